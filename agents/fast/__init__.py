"""The fast training path: SB3 agents whose ``train()`` calls pure update functions.

Layout (each algorithm's shell is a thin subclass of the toolkit's SB3 agent; rollouts, callbacks,
save/load, checkpoints and evaluation stay the parent's):

* :mod:`.common` -- pure pieces every update shares (critic heads with goal leaves, the term, the critic
  step, optimiser flags, the loss log);
* :mod:`.trainer` -- :class:`~.trainer.FastTrainer`, the shell they share (set-up, frozen targets,
  Polyak update, diagnostics);
* :mod:`.td3` (:class:`FastReenGAGEDDPG`, :class:`FastReenGAGETD3`) with the hand-written step of
  :mod:`.td3_manual`; :mod:`.sac` (:class:`FastReenGAGESAC`); :mod:`.tqc` (:class:`FastReenGAGETQC`); :mod:`.dqn` (:class:`FastReenGAGEDQN`);
* :mod:`.multi_goal` (:class:`MultiReenGAGEDDPG`, :class:`MultiReenGAGETD3`) with the fused
  Multi-ReenGAGE step of :mod:`.multi_goal_update`.

The algorithm is the SB3 path's (gradient steps per environment step, hyper-parameters, exploration and
target noise); what goes is overhead:

* TD3 and DDPG with plain ReLU MLPs on flattened box observations run a gradient step written by hand
  (:mod:`reengage.agents.manual_mlp`): no autograd graph, the TD backward and the critic's goal gradient
  share their products (``manual_update = False``, or any other network, falls back to autograd);
* the ReenGAGE term shares the TD loss's target forward and critic forward, and the target networks are
  frozen;
* the actor loss back-propagates into the actor's parameters only (``backward(inputs=...)``);
* target networks follow with one fused ``torch._foreach_lerp_``, and Adam runs its fused implementation;
* ``set_training_mode`` only acts when the mode changes;
* losses are read back to the host once per ``train()`` call, not once per loss;
* the HER buffer is :class:`reengage.agents.her_replay.FastHerReplayBuffer`.

Numerically the update equals the SB3 path's to float rounding (``lerp`` and fused Adam round differently
from SB3's ``mul``/``add`` and single-tensor Adam). One documented difference with the ReenGAGE term on:
the term's target goal gradient uses **the same** target-policy noise sample as the TD target (one shared
target forward), where the SB3 path's mixin draws a second sample of its own. The fused Multi-ReenGAGE
step keeps SB3's optimiser, Polyak arithmetic and both noise draws.

The baselines' robotics recipe (observation normaliser, target clipping, action L2, random actions) runs on
the TD3/DDPG agents of this path, in both forms (:mod:`.td3`). Options that this path does not implement refuse
with a message naming ``trainer: sb3``.
"""

from .dqn import FastReenGAGEDQN
from .multi_goal import MultiReenGAGEDDPG, MultiReenGAGETD3
from .sac import FastReenGAGESAC
from .td3 import FastReenGAGEDDPG, FastReenGAGETD3
from .tqc import FastReenGAGETQC

__all__ = [
    "FastReenGAGEDDPG",
    "FastReenGAGETD3",
    "FastReenGAGESAC",
    "FastReenGAGEDQN",
    "FastReenGAGETQC",
    "MultiReenGAGEDDPG",
    "MultiReenGAGETD3",
]
