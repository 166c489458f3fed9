"""``palsy fit``: fit a variant, store it in the cache, print the diagnostics.

Exit status 0 when the fit is cached and its diagnostics pass; 1 when they fail or when the cache could not
be written (a full disk: the warning names the path); 2 for bad flags or evidence."""

from __future__ import annotations

import argparse

from palsy.model import cache as C
from palsy.reports import terminal as T
from palsy.scripts.commands import common, registry

#: Bounds of the sampler flags: outside them a flag is bad input (exit 2) before anything compiles.
MAX_DRAWS = 100_000
MAX_CHAINS = 64
MAX_THIN = 100
MAX_SEED = 2**32 - 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    common.add_model_arguments(p, ci=False)
    d = C.Settings()
    p.add_argument("--draws", type=common.whole_number("draws", 1, MAX_DRAWS), default=d.draws,
                   help=f"draws kept per chain, 1 to {MAX_DRAWS} (default {d.draws})")
    p.add_argument("--thin", type=common.whole_number("thin", 1, MAX_THIN), default=d.thin,
                   help=f"NUTS transitions per kept draw, 1 to {MAX_THIN} (default {d.thin}: the spread tau mixes "
                        "slowest, and every answer costs in proportion to the draws kept)")
    p.add_argument("--tune", type=common.whole_number("tune", 1, MAX_DRAWS), default=d.tune,
                   help=f"tuning steps per chain, 1 to {MAX_DRAWS} (default {d.tune})")
    p.add_argument("--chains", type=common.whole_number("chains", 1, MAX_CHAINS), default=d.chains,
                   help=f"chains, 1 to {MAX_CHAINS} (default {d.chains})")
    p.add_argument("--seed", type=common.whole_number("seed", 0, MAX_SEED), default=d.seed,
                   help=f"random seed, 0 to 2**32-1 (default {d.seed})")
    p.add_argument("--sampler", choices=C.SAMPLERS, default=d.sampler,
                   help=f"NUTS backend (default {d.sampler}: JAX, compiles in seconds; nutpie: numba, compiles "
                        "in minutes and samples faster once compiled, needs pip install -e '.[nutpie]')")
    p.add_argument("--refit", action="store_true", help="refit even if the cache holds this fit")
    registry.add_fit_arguments(p)


def run(args: argparse.Namespace) -> int:
    C.check_root()  # a cache that cannot hold the fit is bad input: said before PyMC's import (over a second)
    from palsy.model import evidence

    ev = evidence.load(common.priors_dir(args))
    reg, _ = registry.fit_registry(args, ev)
    from palsy.model import fit  # PyMC: only once the input is known to be good

    post = fit.posterior(args.variant, ev, common.settings_from(args), refresh=args.refit,
                         progress=common.progress_reporter(args), registry=reg)
    d = post.diagnostics
    src = "cache" if post.from_cache else f"fitted in {post.seconds:.1f} s"
    print(T.line(f"{args.variant}: {post.draws.n} draws ({src}); R-hat max {d['r_hat_max']:.4f}, "
                 f"bulk ESS min {d['ess_bulk_min']:.0f}, tail ESS min {d['ess_tail_min']:.0f}, "
                 f"divergences {d['divergences']}: {'ok' if d['ok'] else 'NOT OK'}"))
    for line in registry.fit_lines(post.draws.meta):
        print(T.line(line))
    if post.folder is None:  # the cache write failed: the warning above names the path and the reason
        print(T.line("cache: not written (see the warning above)"))
        return 1
    print(T.line(f"cache: {post.folder}"))
    return 0 if d["ok"] else 1
