"""Files every layer reads: model weights (safetensors) and content digests."""
