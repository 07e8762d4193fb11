"""The training loop, checkpoints and resume, preemption, distillation."""
