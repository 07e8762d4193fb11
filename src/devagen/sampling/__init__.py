"""Drawing characters: the diffusers pipeline and model folder, generate, text rows, students."""
