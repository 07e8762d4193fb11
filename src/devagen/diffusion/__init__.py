"""The diffusion maths: UNet building, patches, the training objective, auxiliary losses, the latent autoencoder."""
