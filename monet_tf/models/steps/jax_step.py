"""The training step on JAX: one stateless function that Keras' JAX trainer jits.

Keras hands `train_step(state, data)` the values of every variable, as
(trainable, non-trainable, optimizer, metric) lists, and keeps what it returns. Here:
- the family's shared loss maths (`compute_losses`) runs inside a StatelessScope that maps every
  variable to its value in `state`, so the image pools and the step RNG (non-trainable variables)
  come out updated instead of being assigned;
- one forward pass and `jax.vjp` give every loss group's gradients: the generators' of the
  generator loss and the critics' of the critic loss (XLA drops the cross terms nobody uses);
- each network's optimizer applies its gradients with `stateless_apply`, and the metric
  accumulators update with `stateless_update_state`.
The step sees the global batch. Under keras.distribution.DataParallel the same program is
sharded over the devices, so its maths do not depend on how many there are.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import keras



class OptimizerGroup(keras.optimizers.Optimizer):
    """The networks' optimizers as Keras' one `model.optimizer`.

    Keras' JAX trainer threads `model.optimizer.variables` through the jitted step and writes
    them back after the epoch; this group lists all four optimizers' variables, so every slot is
    carried. `iterations` is the photo_to_monet optimizer's (one per training step). It is never
    applied itself: `train_step` applies each member to its own network.
    """

    def __init__(self, optimizers, name: str = "network_optimizers"):
        super().__init__(learning_rate=0.0, name=name)
        self.members = list(optimizers)
        self.built = True

    @property
    def variables(self):
        return [v for member in self.members for v in member.variables]

    @property
    def iterations(self):
        return self.members[0].iterations

    def finalize_variable_values(self, var_list):
        pass  # No EMA on the members; nothing to swap in at the end of fit.


def _positions(all_variables, subset):
    where = {id(v): i for i, v in enumerate(all_variables)}
    return [where[id(v)] for v in subset]


def train_step(model, state, data):
    trainable, non_trainable, optimizer_values, metric_values = state
    photo, monet = data
    networks = model.networks()
    optimizers = model.optimizer.members
    trainable_refs = model.trainable_variables
    non_trainable_refs = model.non_trainable_variables
    per_network = [_positions(trainable_refs, n.trainable_variables) for n in networks]
    if sorted(i for p in per_network for i in p) != list(range(len(trainable_refs))):
        raise ValueError(f"{type(model).__name__}'s trainable variables must belong to its "
                         f"networks {', '.join(model.NETWORKS)}")
    group_losses = [loss for loss, _ in model.LOSS_GROUPS]

    def forward(network_values):
        values = list(trainable)
        for positions, these in zip(per_network, network_values):
            for i, value in zip(positions, these):
                values[i] = value
        mapping = list(zip(trainable_refs, values)) + list(zip(non_trainable_refs, non_trainable))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            terms = model.compute_losses(photo, monet, global_batch=photo.shape[0])
        updated = [scope.get_current_value(v) for v in non_trainable_refs]
        return tuple(terms[loss] for loss in group_losses), (terms, updated)

    network_values = [[trainable[i] for i in positions] for positions in per_network]
    totals, backward, (terms, non_trainable) = jax.vjp(forward, network_values, has_aux=True)
    # Each network's gradient is of its own group's loss only.
    grads = [None] * len(networks)
    for g, (_, names) in enumerate(model.LOSS_GROUPS):
        seeds = tuple(jnp.ones_like(t) if k == g else jnp.zeros_like(t)
                      for k, t in enumerate(totals))
        (group_grads,) = backward(seeds)
        for name in names:
            n = model.NETWORKS.index(name)
            grads[n] = group_grads[n]

    trainable = list(trainable)
    new_optimizer_values = []
    start = 0
    for optimizer, positions, network_grads, values in zip(
            optimizers, per_network, grads, network_values):
        n = len(optimizer.variables)
        updated_values, updated_slots = optimizer.stateless_apply(
            optimizer_values[start : start + n], network_grads, values)
        new_optimizer_values.extend(updated_slots)
        for i, value in zip(positions, updated_values):
            trainable[i] = value
        start += n

    logs, new_metric_values = {}, []
    start = 0
    for name, tracker in zip(model.METRICS, model.metrics):
        n = len(tracker.variables)
        updated = tracker.stateless_update_state(metric_values[start : start + n], terms[name])
        logs[name] = tracker.stateless_result(updated)
        new_metric_values.extend(updated)
        start += n
    return logs, (trainable, non_trainable, new_optimizer_values, new_metric_values)
