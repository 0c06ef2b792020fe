"""presso.compression.data: real text for calibration and evaluation (Austen from Debian, files, WikiText-2)."""
