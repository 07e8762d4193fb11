"""An adversarial term on the clean-image estimate: a small hinge critic (spectral-normalised convolutions) trained
alternately with the UNet, which it pushes towards estimates the critic cannot tell from real x0.

The UNet's loss gains adversarial_weight · alpha_bar_t · (−critic(x0_hat)) per image (devagen.diffusion.objective),
alpha_bar_t as for the other auxiliary losses: at high noise the estimate is a blur whatever the network does. The
critic then takes one Adam step on the hinge loss relu(1 − D(real)) + relu(1 + D(fake)) over the same batch's real
x0 and the estimates it last scored. It sees what the UNet denoises: pixels (a patch model's patches are put back
into pixels first) or a latent model's latents.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .patches import from_patches

CRITIC_WIDTH = 32  # first conv's channels, then 2x: a few ten thousand weights, small beside the UNet
ADAM_BETAS = (0.5, 0.9)  # the usual GAN critic momenta (less momentum than training's 0.9, 0.999)


class Critic(nn.Module):
    """(B, C·patch², S/patch, S/patch) estimates or real x0 → (B,) realness scores (unbounded; hinge-trained)."""

    def __init__(self, channels: int, patch: int = 1, width: int = CRITIC_WIDTH) -> None:
        super().__init__()
        self.patch = patch
        self.body = nn.Sequential(
            spectral_norm(nn.Conv2d(channels, width, 3, stride=2, padding=1)), nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)), nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(2 * width, 1, 3, padding=1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mean over positions of the last conv's map: one score per image."""
        return self.body(from_patches(x.float(), self.patch)).mean(dim=(1, 2, 3))


def critic_hinge_loss(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Scalar hinge loss of the critic: mean relu(1 − D(real)) + mean relu(1 + D(fake)); 0 once it separates them."""
    return F.relu(1.0 - critic(real)).mean() + F.relu(1.0 + critic(fake)).mean()


class Adversary:
    """The critic, its Adam optimizer and the estimates it last scored; saved in checkpoints (state_dict)."""

    def __init__(self, channels: int, patch: int, lr: float, device: torch.device, seed: int) -> None:
        with torch.random.fork_rng(devices=[]):  # its own seeded init: the UNet's random stream is untouched
            torch.manual_seed(seed)
            self.critic = Critic(channels // patch ** 2, patch).to(device)
        self.optimizer = torch.optim.Adam(self.critic.parameters(), lr=lr, betas=ADAM_BETAS)
        self.fake: Optional[torch.Tensor] = None

    def generator_loss(self, estimate: torch.Tensor) -> torch.Tensor:
        """(B,) −D(estimate), differentiable in the estimate; remembers it, detached, for the critic's next step."""
        self.fake = estimate.detach()
        return -self.critic(estimate)

    def step(self, real: torch.Tensor,
             average: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> torch.Tensor:
        """One critic update on real x0 against the remembered estimates; `average` syncs gradients across processes.
        Returns the critic's hinge loss, a detached scalar on the device."""
        if self.fake is None:
            raise RuntimeError("Adversary.step before generator_loss: no estimate to tell from real images")
        self.optimizer.zero_grad(set_to_none=True)  # drops what the UNet's backward left in the critic
        loss = critic_hinge_loss(self.critic, real.detach(), self.fake)
        loss.backward()
        if average is not None:
            for p in self.critic.parameters():
                p.grad = average(p.grad)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.fake = None
        return loss.detach()

    def state_dict(self) -> dict:
        """The critic's weights and its optimizer's state (accelerate's save_state stores it with the checkpoint)."""
        return {"critic": self.critic.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore what state_dict returned (tensors land on the critic's device)."""
        self.critic.load_state_dict(state["critic"])
        self.optimizer.load_state_dict(state["optimizer"])
