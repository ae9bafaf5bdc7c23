"""How requests run: sequences, paged KV blocks, scheduling, the model runner and the LLM facades."""
