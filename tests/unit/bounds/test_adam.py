"""Our Adam must follow torch.optim.Adam step for step (same maths, no dynamo import)."""
import torch

from genbab.bounds.adam import Adam


def test_matches_torch_adam_with_lr_decay():
    torch.manual_seed(0)
    target = torch.randn(5, 3)
    ours = torch.randn(5, 3, requires_grad=True)
    theirs = ours.detach().clone().requires_grad_(True)
    mine = Adam([ours], lr=0.1)
    ref = torch.optim.Adam([theirs], lr=0.1)
    sched = torch.optim.lr_scheduler.ExponentialLR(ref, 0.98)
    for _ in range(30):
        for p, opt in ((ours, mine), (theirs, ref)):
            opt.zero_grad()
            ((p - target) ** 2 * torch.arange(1.0, 4.0)).sum().backward()
            opt.step()
        mine.decay_lr(0.98)
        sched.step()
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_parameters_without_gradient_are_left_alone():
    a = torch.ones(2, requires_grad=True)
    b = torch.ones(2, requires_grad=True)
    opt = Adam([a, b], lr=0.5)
    a.sum().backward()
    opt.step()
    assert torch.equal(b.detach(), torch.ones(2)) and not torch.equal(a.detach(), torch.ones(2))
