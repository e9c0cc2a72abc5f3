"""OpenAI Chat Completions: `/v1/chat/completions`, the format the providers also speak."""
