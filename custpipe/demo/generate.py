"""Entry point: generate the four dirty demo source systems plus ground truth."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from custpipe.demo import systems
from custpipe.demo.corruption import Corruptor
from custpipe.demo.entities import build_entities
from custpipe.demo.orders import generate_orders
from custpipe.demo.rates import ErrorRates
from custpipe.demo.records import SYSTEMS, assign_systems, build_records

__all__ = ["ErrorRates", "generate_demo", "output_paths"]

DEFAULT_BUSINESS_DATE = dt.date(2026, 11, 27)
ORDER_KINDS = (
    "status_mismatch",
    "amount_mismatch",
    "missing_in_erp",
    "missing_in_sales",
    "duplicate_customer",
    "line_total_mismatch",
)


def output_paths(out_dir: Path, business_date: dt.date = DEFAULT_BUSINESS_DATE) -> dict:
    """Paths of every generated file, keyed by a short name."""
    out_dir = Path(out_dir)
    ymd = business_date.strftime("%Y%m%d")
    return {
        "erp": out_dir / "erp" / "erp.sqlite",
        "crm": out_dir / "crm" / "crm.sqlite",
        "sales_customers": out_dir / "sales" / f"customers_{ymd}.csv",
        "sales_orders": out_dir / "sales" / f"orders_{ymd}.csv",
        "service": out_dir / "service" / "customers.jsonl",
        "gt_customers": out_dir / "ground_truth" / "customers.csv",
        "gt_orders": out_dir / "ground_truth" / "orders.csv",
        "gt_discrepancies": out_dir / "ground_truth" / "order_discrepancies.csv",
        "gt_rates": out_dir / "ground_truth" / "rates.json",
    }


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream])


def generate_demo(
    out_dir: Path,
    customers: int,
    seed: int = 42,
    rates: ErrorRates | None = None,
    business_date: dt.date = DEFAULT_BUSINESS_DATE,
    orders_per_customer: float = 2.0,
) -> dict:
    """Write the demo source systems and ground truth to ``out_dir``; return a summary.

    Same arguments give byte-identical files. The summary holds record and order counts per
    system, injected defects by kind and the elapsed seconds (never customer values).
    """
    start = time.perf_counter()
    rates = rates or ErrorRates()
    paths = output_paths(out_dir, business_date)
    for p in paths.values():
        p.parent.mkdir(parents=True, exist_ok=True)
        p.unlink(missing_ok=True)

    ent = build_entities(customers, _rng(seed, 1), business_date, seed)
    member = assign_systems(ent, _rng(seed, 2))
    defects: Counter = Counter()
    records, tiers = {}, {}
    for k, system in enumerate(SYSTEMS):
        rec = build_records(
            ent, system, member[system], rates.duplicate, business_date, _rng(seed, 10 + k)
        )
        corruptor = Corruptor(rates, _rng(seed, 20 + k), defects)
        corruptor.run(rec, system)
        tiers[system] = corruptor.tier_codes(rec["tier"], system)
        defects["duplicate_record"] += int(rec["is_dup"].sum())
        records[system] = rec

    wr = _rng(seed, 4)
    # deletion flags first: an order belongs to the ERP record the pipeline keeps (lowest
    # active customer number), so the ground truth knows which orders sit on a duplicate
    records["erp"]["deleted"] = wr.random(len(records["erp"])) < rates.deleted
    order_counts: Counter = Counter()
    orders = generate_orders(
        ent,
        member,
        records,
        rates,
        business_date,
        _rng(seed, 3),
        order_counts,
        orders_per_customer,
    )

    systems.write_erp(records["erp"], tiers["erp"], paths["erp"])
    systems.write_vbak(orders["vbak"], paths["erp"])
    systems.write_vbap(orders["vbap"], paths["erp"])
    systems.write_crm(records["crm"], tiers["crm"], paths["crm"], wr, rates.deleted)
    systems.write_sales_customers(records["sales"], tiers["sales"], paths["sales_customers"], wr)
    systems.write_sales_orders(orders["sales"], paths["sales_orders"])
    systems.write_service(records["service"], tiers["service"], paths["service"], wr)

    gt = pd.concat(
        [
            pd.DataFrame(
                {
                    "source_system": s,
                    "source_id": records[s]["source_id"],
                    "entity_id": records[s]["entity_id"],
                }
            )
            for s in SYSTEMS
        ],
        ignore_index=True,
    )
    gt.to_csv(paths["gt_customers"], index=False, encoding="utf-8", lineterminator="\n")
    orders["truth"].to_csv(paths["gt_orders"], index=False, lineterminator="\n")
    orders["discrepancies"].to_csv(paths["gt_discrepancies"], index=False, lineterminator="\n")
    meta = {
        "seed": seed,
        "customers": customers,
        "business_date": business_date.isoformat(),
        "rates": rates.to_dict(),
    }
    paths["gt_rates"].write_text(
        json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )

    return {
        "customers": customers,
        "seed": seed,
        "business_date": business_date.isoformat(),
        "records": {s: len(records[s]) for s in SYSTEMS},
        "duplicates": {s: int(records[s]["is_dup"].sum()) for s in SYSTEMS},
        "orders": {
            "erp": len(orders["vbak"]),
            "erp_lines": len(orders["vbap"]),
            "sales": len(orders["sales"]),
            "total": len(orders["truth"]),
        },
        "discrepancies": {k: order_counts.get(k, 0) for k in ORDER_KINDS},
        "record_defects": dict(sorted(defects.items())),
        "elapsed_seconds": round(time.perf_counter() - start, 3),
    }


def main(argv: list[str] | None = None) -> None:
    """CLI: ``python -m custpipe.demo.generate OUT_DIR --customers N [--seed S]``."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--customers", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--business-date", type=dt.date.fromisoformat, default=DEFAULT_BUSINESS_DATE)
    args = ap.parse_args(argv)
    summary = generate_demo(
        args.out_dir, args.customers, args.seed, business_date=args.business_date
    )
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
