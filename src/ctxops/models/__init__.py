"""What a model is: config, RoPE, the Llama-family transformer, weights and tokenizer."""
