"""presso.compression.eval: perplexity and size metrics for dense and compressed checkpoints."""
