"""Export: Hugging Face folders and LoRA adapters to GGUF files llama.cpp loads, plus quantization."""
