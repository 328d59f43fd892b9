"""The training runner: continual pre-training of a GPT-BigCode model on a stage's shards."""
