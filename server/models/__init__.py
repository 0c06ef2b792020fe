"""Model implementations on presso's layers (Llama family, GPT-2) and their safetensors loader."""
