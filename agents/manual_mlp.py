"""Hand-written forward and backward passes of SB3's ReLU MLPs: gradient steps with no autograd graph.

At the sizes of the goal-conditioned benchmarks (batch 256, 2x256 networks, one CPU thread) a 256 x 256
x 256 product takes about 0.2 ms, and autograd's bookkeeping (graph nodes, saved tensors, out-of-place
ReLUs, one dispatch per op of every backward) added about 1 ms to a 7 ms DDPG step (docs/performance.md).
For ReLU MLPs the whole calculus is short enough to write out, which also exposes sharing that autograd
cannot see:

For a network ``q = W_L h_{L-1} + b_L`` with ``h_k = relu(W_k h_{k-1} + b_k)`` and ONE output, let
``u_k = dq / d(pre-activation k)`` per sample (:func:`value_pre_activation_gradients`)::

    u_{L-1} = m_{L-1} * W_L,     u_{k-1} = m_{k-1} * (u_k @ W_k),     m_k = 1[h_k > 0]

* the backward of any loss ``sum_b l(q_b)`` is ``delta_k = dl/dq_b * u_k``: the per-sample output
  gradient is a row scale that commutes with the masks and the products, so the TD loss's backward
  needs no input-side products of its own once the ``u_k`` exist;
* the input gradient (the critic's goal gradient of ReenGAGE) is ``u_1 @ W_1[:, columns]``: the same
  ``u_k`` again;
* the goal-gradient term ``sum_b tau(G_b)`` with ``G = u_1 @ W_1[:, goal]`` has, with the masks held
  constant (they are piecewise constant in the weights, which is what autograd's double backward
  through ReLU uses too), the weight gradients of :func:`value_head_backward`; the TD and the term
  gradients of each hidden layer then come out of ONE product ``u_k^T @ (dl/dq * h_{k-1} + p_{k-1})``.

Everything here runs under ``torch.no_grad()`` and writes parameter gradients into preallocated
``.grad`` tensors (``out=``), so an optimiser step follows as usual. ``tests/test_manual_mlp.py`` holds
each function against autograd (first and double backward).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

_threshold_backward = torch.ops.aten.threshold_backward


def relu_backward(grad: Tensor, output: Tensor) -> Tensor:
    """``grad * 1[output > 0]`` for a ReLU's ``output``, in one kernel (the op autograd uses itself)."""
    return _threshold_backward(grad, output, 0)


@dataclass(frozen=True)
class ReluMLP:
    """The parameters of SB3's ``create_mlp`` network: ``Linear, ReLU, ..., Linear`` [``, Tanh``].

    ``weights[k]`` is ``(out, in)`` as in ``nn.Linear``; the tensors are the module's own parameters, so
    gradients written into their ``.grad`` reach the module's optimiser.
    """

    weights: tuple[Tensor, ...]
    biases: tuple[Tensor, ...]
    tanh_output: bool

    @classmethod
    def of(cls, network: nn.Module) -> ReluMLP | None:
        """The MLP view of ``network``, or ``None`` when it is not a bias-ful ReLU MLP (optionally tanh-squashed)."""
        if not isinstance(network, nn.Sequential):
            return None
        modules = list(network.children())
        tanh_output = bool(modules) and isinstance(modules[-1], nn.Tanh)
        if tanh_output:
            modules = modules[:-1]
        if not modules or len(modules) % 2 == 0:
            return None
        linears = [m for m in modules[0::2] if type(m) is nn.Linear]  # exactly: subclasses may change the forward
        if len(linears) != len(modules[0::2]) or not all(type(m) is nn.ReLU for m in modules[1::2]):
            return None
        biases = [m.bias for m in linears if m.bias is not None]
        if len(biases) != len(linears):
            return None
        return cls(tuple(m.weight for m in linears), tuple(biases), tanh_output)

    @property
    def depth(self) -> int:
        return len(self.weights)

    def gradient_buffers(self) -> tuple[list[Tensor], list[Tensor]]:
        """The ``.grad`` tensors of the weights and biases, allocated (uninitialised) where missing."""
        return [_gradient_buffer(w) for w in self.weights], [_gradient_buffer(b) for b in self.biases]


def _gradient_buffer(parameter: Tensor) -> Tensor:
    """``parameter.grad``, allocated (uninitialised) when missing: the hand-written backward writes it with ``out=``."""
    if parameter.grad is None:
        parameter.grad = torch.empty_like(parameter)
    return parameter.grad


def relu_mlp_forward(mlp: ReluMLP, inputs: Tensor) -> tuple[Tensor, list[Tensor]]:
    """The network's output (after the tanh, if any) and ``[inputs, h_1, ..., h_{L-1}]`` for the backward."""
    hidden = [inputs]
    h = inputs
    for weight, bias in zip(mlp.weights[:-1], mlp.biases[:-1]):
        h = torch.addmm(bias, h, weight.t()).relu_()
        hidden.append(h)
    out = torch.addmm(mlp.biases[-1], h, mlp.weights[-1].t())
    return (out.tanh_() if mlp.tanh_output else out), hidden


def value_pre_activation_gradients(mlp: ReluMLP, hidden: Sequence[Tensor]) -> list[Tensor]:
    """``[u_1, ..., u_{L-1}]``: per-sample gradients of a one-output network at its hidden pre-activations."""
    if mlp.weights[-1].shape[0] != 1 or mlp.tanh_output:
        raise ValueError("value_pre_activation_gradients needs a network with one linear output")
    batch = hidden[0].shape[0]
    u = relu_backward(mlp.weights[-1].expand(batch, -1), hidden[-1])
    us = [u]
    for k in range(mlp.depth - 2, 0, -1):  # hidden layer k+1's weight maps h_k to pre-activation k+1
        u = relu_backward(u @ mlp.weights[k], hidden[k])
        us.append(u)
    us.reverse()
    return us


def value_input_gradient(mlp: ReluMLP, us: Sequence[Tensor], columns: slice) -> Tensor:
    """``dq / d inputs[:, columns]`` per sample, from :func:`value_pre_activation_gradients`."""
    return us[0] @ mlp.weights[0][:, columns]


def value_head_backward(
    mlp: ReluMLP,
    hidden: Sequence[Tensor],
    us: Sequence[Tensor],
    output_grad: Tensor,
    input_error: Tensor | None = None,
    columns: slice | None = None,
) -> None:
    """Parameter gradients of ``sum_b output_grad_b q_b + sum_b input_error_b . G_b``, into ``.grad``.

    ``G = dq/d inputs[:, columns]`` (:func:`value_input_gradient`); ``input_error`` (B, len(columns)) is the
    derivative of a loss in ``G`` (None: no such term). The masks count as constants in the term, as in
    autograd's double backward through ReLU, so the term adds to the weights only, not to the biases.

    With a term, layer k's weights get ``u_k^T (dl/dq * h_{k-1} + p_{k-1})`` where ``p`` is the term's
    gradient at the hidden layers, going up from the input (``p_1 = m_1 * (E @ W_1[:, columns]^T)``,
    ``p_k = m_k * (p_{k-1} @ W_k^T)``). The top hidden layer needs no ``p @ W^T`` product of its own:
    with ``u_{L-1} = m_{L-1} * W_L`` both its weight gradient and the output weights' gradient are read
    off ``M = m_{L-1}^T @ (dl/dq * h_{L-2} + p_{L-2})``::

        dW_{L-1} = W_L^T * M        dW_L = rowsum(W_{L-1} * M) + b_{L-1} * (dl/dq^T m_{L-1})

    (the second because ``rowsum(W_{L-1} * m^T (dl/dq * h))_j = sum_b dl/dq_b m_bj (pre_bj - b_j)`` and
    ``m * pre = h_{L-1}``): one large product fewer than back-propagating ``p`` through ``W_{L-1}``.
    """
    weight_grads, bias_grads = mlp.gradient_buffers()
    depth = mlp.depth
    weights, biases = mlp.weights, mlp.biases
    if input_error is None:
        for k in range(depth - 1):
            torch.mm(us[k].t(), output_grad * hidden[k], out=weight_grads[k])
            torch.mm(output_grad.t(), us[k], out=bias_grads[k].view(1, -1))
        torch.mm(output_grad.t(), hidden[-1], out=weight_grads[-1])
        torch.sum(output_grad, dim=0, out=bias_grads[-1])
        return
    assert columns is not None
    rhs = output_grad * hidden[0]
    rhs[:, columns] += input_error
    p = relu_backward(input_error @ weights[0][:, columns].t(), hidden[1]) if depth > 2 else None  # p_1
    for k in range(depth - 2):  # the layers below the top hidden layer
        torch.mm(us[k].t(), rhs, out=weight_grads[k])
        torch.mm(output_grad.t(), us[k], out=bias_grads[k].view(1, -1))
        assert p is not None
        rhs = torch.addcmul(p, output_grad, hidden[k + 1])
        if k + 1 < depth - 2:
            p = relu_backward(p @ weights[k + 1].t(), hidden[k + 2])
    top = depth - 2
    mask = relu_backward(torch.ones((), dtype=rhs.dtype, device=rhs.device).expand_as(hidden[-1]), hidden[-1])
    products = mask.t() @ rhs  # M
    torch.mul(weights[-1].t(), products, out=weight_grads[top])
    active = output_grad.t() @ mask  # (1, H): dl/dq^T m
    torch.mul(weights[-1], active, out=bias_grads[top].view(1, -1))
    torch.sum(weights[top] * products, dim=1, out=weight_grads[-1].view(-1))
    weight_grads[-1].addcmul_(biases[top].view(1, -1), active)
    torch.sum(output_grad, dim=0, out=bias_grads[-1])


def mlp_backward(
    mlp: ReluMLP,
    hidden: Sequence[Tensor],
    output: Tensor,
    output_grad: Tensor,
    parameters: bool = True,
    input_columns: slice | None = None,
) -> Tensor | None:
    """Backward of ``sum(output_grad * output)``: parameter gradients into ``.grad`` (if ``parameters``) and
    the input gradient's ``input_columns`` (if given). ``output`` is what :func:`relu_mlp_forward` returned."""
    delta = output_grad * (1.0 - output * output) if mlp.tanh_output else output_grad
    weight_grads, bias_grads = mlp.gradient_buffers() if parameters else ([], [])
    for k in range(mlp.depth - 1, -1, -1):
        if parameters:
            torch.mm(delta.t(), hidden[k], out=weight_grads[k])
            torch.sum(delta, dim=0, out=bias_grads[k])
        if k > 0:
            delta = relu_backward(delta @ mlp.weights[k], hidden[k])
    if input_columns is None:
        return None
    return delta @ mlp.weights[0][:, input_columns]


# ---------------------------------------------------------------------- SB3 inputs
def flat_input_keys(extractor: nn.Module, observation_space: object) -> tuple[str, ...] | None | bool:
    """How SB3's features extractor forms the MLP input, when it only flattens float boxes.

    Returns the dict keys in the order ``CombinedExtractor`` concatenates them, ``None`` for a
    ``FlattenExtractor`` on a box, and ``False`` when the extractor does anything else (normalisation,
    one-hot encodings, images, learned layers), where the hand-written path does not apply.
    """
    from gymnasium import spaces
    from stable_baselines3.common.preprocessing import is_image_space
    from stable_baselines3.common.torch_layers import CombinedExtractor, FlattenExtractor

    def plain_box(space: object) -> bool:
        return isinstance(space, spaces.Box) and not is_image_space(space)

    if type(extractor) is FlattenExtractor:
        return None if plain_box(observation_space) else False
    if type(extractor) is CombinedExtractor and isinstance(observation_space, spaces.Dict):
        keys = tuple(extractor.extractors.keys())
        subs = extractor.extractors.items()
        if all(type(sub) is nn.Flatten and plain_box(observation_space.spaces[key]) for key, sub in subs):
            return keys
    return False


def flat_input(observations: Tensor | dict[str, Tensor], keys: tuple[str, ...] | None) -> Tensor:
    """The features SB3's flatten-only extractor computes (``preprocess_obs`` of a box is ``.float()``)."""
    if keys is None:
        assert isinstance(observations, Tensor)
        return observations.float().flatten(1)
    assert isinstance(observations, dict)
    return torch.cat([observations[key].float().flatten(1) for key in keys], dim=1)


def goal_columns(keys: tuple[str, ...], observation_space: object, goal_key: str) -> slice | None:
    """Where ``goal_key`` sits in the flattened input of :func:`flat_input` (``keys`` from :func:`flat_input_keys`).

    ``None`` when the goal is not one of the keys.
    """
    from gymnasium import spaces
    from stable_baselines3.common.preprocessing import get_flattened_obs_dim

    assert isinstance(observation_space, spaces.Dict)
    offset = 0
    for key in keys:  # the order in which CombinedExtractor concatenates
        width = get_flattened_obs_dim(observation_space.spaces[key])
        if key == goal_key:
            return slice(offset, offset + width)
        offset += width
    return None
