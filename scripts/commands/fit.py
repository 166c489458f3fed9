"""``palsy fit``: fit a variant, store it in the cache, print the diagnostics."""

from __future__ import annotations

import argparse

from model import cache as C
from scripts.commands import common


def add_arguments(p: argparse.ArgumentParser) -> None:
    common.add_model_arguments(p, ci=False)
    d = C.Settings()
    p.add_argument("--draws", type=int, default=d.draws, help=f"draws per chain (default {d.draws})")
    p.add_argument("--tune", type=int, default=d.tune, help=f"tuning steps per chain (default {d.tune})")
    p.add_argument("--chains", type=int, default=d.chains, help=f"chains (default {d.chains})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    p.add_argument("--refit", action="store_true", help="refit even if the cache holds this fit")


def run(args: argparse.Namespace) -> int:
    for name in ("draws", "tune", "chains"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name}: {getattr(args, name)} is not allowed; give a whole number >= 1")
    from model import evidence, fit

    ev = evidence.load(common.priors_dir(args))
    post = fit.posterior(args.variant, ev, common.settings_from(args), refresh=args.refit)
    d = post.diagnostics
    src = "cache" if post.from_cache else f"fitted in {post.seconds:.1f} s"
    print(f"{args.variant}: {post.draws.n} draws ({src}); R-hat max {d['r_hat_max']:.4f}, "
          f"bulk ESS min {d['ess_bulk_min']:.0f}, tail ESS min {d['ess_tail_min']:.0f}, "
          f"divergences {d['divergences']}: {'ok' if d['ok'] else 'NOT OK'}")
    print(f"cache: {post.folder}")
    return 0 if d["ok"] else 1
