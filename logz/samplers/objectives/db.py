"""Detailed balance with the learned log-flow: mean over steps k and paths of
(log F_k + log P_F,k - log F_{k+1} - log P_B,k)^2 (``losses.detailed_balance_loss``); the
log-flow is SubTB's (``subtb.LearnedFlow``)."""

from __future__ import annotations

from logz.samplers import losses
from logz.samplers.objectives.subtb import LearnedFlow


class DB(LearnedFlow):
    name = "db"

    def residual(self, s, log_pf, log_pb, log_r, log_f):
        return losses.detailed_balance_loss(log_pf, log_pb, log_f), log_f[0, 0].detach()


__all__ = ["DB"]
