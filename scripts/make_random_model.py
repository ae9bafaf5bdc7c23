"""Write a random-weight Llama model directory (HF format) for trying ctxops before a real model is at hand.

Usage: python scripts/make_random_model.py DIR [--hidden-size 64 --layers 2 ...]
"""

import argparse

from ctxops.models.random_model import write_random_model

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("directory")
parser.add_argument("--hidden-size", type=int, default=64)
parser.add_argument("--layers", type=int, default=2)
parser.add_argument("--heads", type=int, default=4)
parser.add_argument("--kv-heads", type=int, default=2)
parser.add_argument("--intermediate-size", type=int, default=128)
parser.add_argument("--max-position-embeddings", type=int, default=4096)
args = parser.parse_args()
path = write_random_model(
    args.directory,
    hidden_size=args.hidden_size,
    num_hidden_layers=args.layers,
    num_attention_heads=args.heads,
    num_key_value_heads=args.kv_heads,
    intermediate_size=args.intermediate_size,
    max_position_embeddings=args.max_position_embeddings,
)
print(f"wrote a random-weight model to {path}")
