"""Local model runtime: model store, llama.cpp engine with batched, constrained decoding."""
