"""presso.compression.quality: `presso bench quality`, presso's presets against llama.cpp's quantizations on
the evaluation suite, every model scored by presso's scorer (llama.cpp's GGUFs dequantized back to HF)."""
