"""Adam or AdamW over a population's parameters [K, P] with a learning rate per member.

The whole population is one tensor, so a step is a handful of elementwise kernels whatever K
is. Members that diverged are frozen: their gradients are zeroed and their learning rate is 0,
so a NaN in one member never reaches the moments of another. The step count (every member
steps together) is a device tensor updated in place, so the update reads no host value and
a captured CUDA graph replays it as is. State is a plain dict for checkpoints.
"""

from __future__ import annotations

import torch


class PopulationAdam:
    def __init__(
        self,
        params: torch.Tensor,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled: bool = True,
    ) -> None:
        self.params = params
        self.betas, self.eps, self.weight_decay, self.decoupled = betas, eps, weight_decay, decoupled
        self.exp_avg = torch.zeros_like(params)
        self.exp_avg_sq = torch.zeros_like(params)
        self.steps = torch.zeros((), dtype=torch.float64, device=params.device)
        self.betas_t = torch.tensor(betas, dtype=torch.float64, device=params.device)

    @torch.no_grad()
    def step(self, grad: torch.Tensor, lr: torch.Tensor, alive: torch.Tensor) -> None:
        """One update from `grad` [K, P]; `lr` [K] per member, `alive` [K] bool (False: frozen)."""
        b1, b2 = self.betas
        self.steps.add_(1)
        p, g = self.params, grad
        keep = alive.unsqueeze(1)
        g = torch.where(keep, g, 0.0)  # also drops NaN/inf gradients of diverged members
        lr = torch.where(alive, lr, 0.0).unsqueeze(1)
        if self.weight_decay and self.decoupled:  # AdamW
            p.mul_(1 - lr * self.weight_decay)
        elif self.weight_decay:  # Adam's L2 penalty, folded into the gradient
            g = g + self.weight_decay * torch.where(keep, p, 0.0)
        self.exp_avg.lerp_(g, 1 - b1)
        self.exp_avg_sq.mul_(b2).addcmul_(g, g, value=1 - b2)
        # Both bias corrections 1 − β^steps in one float64 kernel (0-d each: they do not
        # promote the float32 moments).
        correction = 1 - self.betas_t**self.steps
        denom = (self.exp_avg_sq / correction[1]).sqrt_().add_(self.eps)
        p.addcdiv_(self.exp_avg * (lr / correction[0]), denom, value=-1.0)

    def state_dict(self) -> dict:
        return {"exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq, "steps": self.steps.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.exp_avg.copy_(state["exp_avg"])
        self.exp_avg_sq.copy_(state["exp_avg_sq"])
        self.steps.fill_(float(state["steps"]))
