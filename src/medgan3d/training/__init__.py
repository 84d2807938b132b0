"""Training: StyleGAN2 objective, the explicit loop, checkpoints."""
