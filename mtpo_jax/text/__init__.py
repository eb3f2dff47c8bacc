"""Text plumbing every layer above the models shares: the SentencePiece vocabulary, the rendering of a
conversation as model input, and fixed-length id packing. Imports nothing from the project but `types`."""
