"""Benchmark the embedded model: load time, prompt and generation speed, SQL latency, memory.

    .venv/bin/python bench/bench_lm.py --model 0.5b
    .venv/bin/python bench/bench_lm.py --model 1.5b --threads 2
    .venv/bin/python bench/bench_lm.py --model 1.5b --no-flash-attn --repack-weights   # llama.cpp defaults

Prints one JSON line. Speeds come from llama.cpp's own `timings` (prompt cache off for the
prompt measurement); the SQL latency is wall-clock through dspy.LM, as the agent calls it.
Memory is this process's VmRSS/VmHWM from /proc/self/status (no psutil needed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.config import EmbeddedSettings, LMSettings  # noqa: E402
from agent.lm.embedded import build_lm, complete_once, get_server  # noqa: E402
from agent.lm.models import get_spec, is_cached  # noqa: E402

ALIASES = {"0.5b": "qwen2.5-coder-0.5b", "1.5b": "qwen2.5-coder-1.5b"}

SCHEMA = """You write DuckDB SQL. Tables:
people(playerID VARCHAR PRIMARY KEY, nameFirst VARCHAR, nameLast VARCHAR, birthYear INTEGER, birthCountry VARCHAR)
batting(playerID VARCHAR, yearID INTEGER, teamID VARCHAR, G INTEGER, AB INTEGER, H INTEGER, HR INTEGER, RBI INTEGER)
teams(yearID INTEGER, teamID VARCHAR, name VARCHAR, W INTEGER, L INTEGER, lgID VARCHAR)
Answer with one SQL query and nothing else."""

QUESTIONS = [
    "How many players were born in Canada?",
    "Which player hit the most home runs in 2001?",
    "List the teams with more than 100 wins, by year.",
    "What is the total number of hits by players named Ichiro?",
]


def proc_status() -> dict[str, int]:
    """VmRSS / VmHWM of this process in MiB."""
    out = {}
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) // 1024
    return out


def loadavg() -> list[float]:
    with open("/proc/loadavg", encoding="ascii") as fh:
        return [float(x) for x in fh.read().split()[:3]]


def raw_chat(server, messages: list[dict], **body) -> dict:
    req = urllib.request.Request(
        server.base_url + "/v1/chat/completions",
        data=json.dumps({"model": server.name, "messages": messages, **body}).encode(),
        headers={"Authorization": f"Bearer {server.api_key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=600) as resp:
        return json.loads(resp.read())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="0.5b", help="0.5b, 1.5b or a registry name")
    parser.add_argument("--threads", type=int, default=EmbeddedSettings().threads)
    parser.add_argument("--ctx-size", type=int, default=EmbeddedSettings().ctx_size)
    parser.add_argument("--gen-tokens", type=int, default=128)
    defaults = EmbeddedSettings()
    parser.add_argument("--flash-attn", action=argparse.BooleanOptionalAction, default=defaults.flash_attn)
    parser.add_argument(
        "--repack-weights", action=argparse.BooleanOptionalAction, default=defaults.repack_weights
    )
    args = parser.parse_args(argv)

    name = ALIASES.get(args.model, args.model)
    settings = EmbeddedSettings(
        threads=args.threads,
        ctx_size=args.ctx_size,
        flash_attn=args.flash_attn,
        repack_weights=args.repack_weights,
    )
    spec = get_spec(name)
    load_before = loadavg()
    rss_before = proc_status()
    was_cached = is_cached(spec, settings.cache_dir)

    started = time.perf_counter()
    server = get_server(name, settings)
    start_s = time.perf_counter() - started
    rss_loaded = proc_status()

    # Prompt processing: a ~600-token prompt, prompt cache off, one output token.
    long_prompt = (SCHEMA + "\n") * 4 + "Summarise the schema in one word."
    r = raw_chat(
        server, [{"role": "user", "content": long_prompt}], max_tokens=1, temperature=0, cache_prompt=False
    )
    prompt_t = r["timings"]

    # Generation: a fixed number of tokens (ignore_eos keeps it going).
    r = raw_chat(
        server,
        [{"role": "user", "content": "Write a long essay about relational databases."}],
        max_tokens=args.gen_tokens,
        temperature=0,
        ignore_eos=True,
    )
    gen_t = r["timings"]

    # Short SQL answers through dspy.LM (uncached), schema first so llama.cpp reuses the prefix.
    lm = build_lm(
        LMSettings(model=f"embedded/{name}", temperature=0.0, max_tokens=120, cache=False), settings
    )
    sql_runs = []
    for question in QUESTIONS:
        text, latency, usage = complete_once(lm, f"{SCHEMA}\n\nQuestion: {question}")
        sql_runs.append(
            {"q": question, "s": round(latency, 2), "usage": usage.get("completion_tokens"), "sql": text}
        )
    rss_after = proc_status()

    result = {
        "model": name,
        "threads": args.threads,
        "ctx_size": args.ctx_size,
        "flash_attn": settings.flash_attn,
        "repack_weights": settings.repack_weights,
        "model_mib": round(spec.size_bytes / 2**20),
        "was_cached": was_cached,
        "assemble_s": round(server.assemble_seconds or 0.0, 2),
        "load_s": round(server.load_seconds or 0.0, 2),
        "start_total_s": round(start_s, 2),
        "prompt_tokens": prompt_t["prompt_n"],
        "prompt_tok_s": round(prompt_t["prompt_per_second"], 1),
        "gen_tokens": gen_t["predicted_n"],
        "gen_tok_s": round(gen_t["predicted_per_second"], 1),
        "sql_latency_first_s": sql_runs[0]["s"],
        "sql_latency_median_rest_s": round(statistics.median(x["s"] for x in sql_runs[1:]), 2),
        "sql_examples": [{"q": x["q"], "s": x["s"], "sql": x["sql"].strip()[:200]} for x in sql_runs],
        "rss_mib_before": rss_before.get("VmRSS"),
        "rss_mib_after_load": rss_loaded.get("VmRSS"),
        "rss_mib_after_queries": rss_after.get("VmRSS"),
        "hwm_mib": rss_after.get("VmHWM"),
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
        "cpus": os.cpu_count(),
    }
    server.stop()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
