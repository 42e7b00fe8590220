"""SteerLM verbs: ``steerlab steerlm train-value | annotate | relabel | sft | bootstrap | digits | eval``.

The pipeline, each step writing what the next reads::

    steerlab steerlm train-value --out vm/
    steerlab steerlm annotate --value-model vm/ --out data/        # annotated.t2v.jsonl, annotated.v2t.jsonl
    steerlab steerlm sft --data data/annotated.v2t.jsonl --out steerlm-r1/
    steerlab steerlm bootstrap --adapter steerlm-r1/ --value-model vm/ --data data/annotated.v2t.jsonl --out steerlm-r2/
    steerlab steerlm eval --adapter steerlm-r1/ --adapter steerlm-r2/ --value-model vm/ --out results/control
    steerlab steerlm digits --adapter steerlm-r1/ --adapter steerlm-r2/ --attribute humor   # likelihood check
    steerlab generate --steer steerlm-r2/ --attr humor=4 --attr toxicity=0 -p "Tell me about cats"
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from steerlab.cli.common import ENGINE, OVERWRITE, check_artifact_out, console, load, model_for, out, text_engine
from steerlab.cli.config_options import config_command
from steerlab.defaults import DEFAULT_MODEL
from steerlab.errors import SteerlabError
from steerlab.methods.steerlm.config import SFTConfig

if TYPE_CHECKING:
    from steerlab.methods.steerlm import SteerLMAdapter
    from steerlab.methods.steerlm.value_model import ValueModel

steerlm_app = typer.Typer(no_args_is_help=True, help="SteerLM: value model → annotate → SFT → bootstrap → eval.")


def _value_model(path: Path) -> ValueModel:
    from steerlab.methods.steerlm.value_model import ValueModel

    return ValueModel.load(path)


def _adapter(path: Path) -> SteerLMAdapter:
    from steerlab.core.artifact import load_artifact
    from steerlab.methods.steerlm import SteerLMAdapter

    art = load_artifact(path)
    if not isinstance(art, SteerLMAdapter):
        raise SteerlabError(f"{path} is a {art.method!r} artifact; this verb needs a steerlm adapter")
    return art


@steerlm_app.command("train-value")
def train_value(out_dir: Path = typer.Option(..., "--out", "-o", help="Value-model directory to write."),
                n_tweets: int = typer.Option(3000), n_reviews: int = typer.Option(1500),
                max_per_topic: int = typer.Option(150, help="Cap per chatterbot topic."),
                heldout: float = typer.Option(0.2),
                balance: str = typer.Option("sqrt", help="Up-weight rare label levels: sqrt | levels | none."),
                humor_corpora: bool = typer.Option(True, help="Humour labels from the Mallard corpus and "
                                                   "pyjokes too (else: 31 chatterbot jokes only)."),
                seed: int = typer.Option(0), overwrite: bool = OVERWRITE) -> None:
    """Train the attribute predictor on labels bootstrapped from packaged corpora and scorers."""
    from steerlab.core.atomic import check_dir_target
    from steerlab.methods.steerlm.value_data import value_training_data
    from steerlab.methods.steerlm.value_model import CONFIG, WEIGHTS, train_value_model

    check_dir_target(out_dir, {CONFIG, WEIGHTS}, overwrite=overwrite, what="value model")

    with console.status("building labelled rows (scoring toxicity)"):
        rows = value_training_data(n_tweets=n_tweets, n_reviews=n_reviews, max_per_topic=max_per_topic,
                                   humor_corpora=humor_corpora, seed=seed)
    vm = train_value_model(rows, heldout=heldout, balance=balance, seed=seed)
    vm.save(out_dir, overwrite=overwrite)
    table = Table(title=f"value model: held-out metrics ({len(rows)} rows)")
    for col in ("attribute", "Spearman ρ", "MAE", "accuracy", "AUC", "n test"):
        table.add_column(col)
    for name, m in vm.metrics.items():
        table.add_row(name, f"{m.get('spearman', float('nan')):.3f}", f"{m.get('mae', float('nan')):.3f}",
                      f"{m.get('accuracy', float('nan')):.3f}", f"{m['auc']:.3f}" if "auc" in m else "—",
                      str(m.get("n_test", 0)))
        for src, sm in m.get("by_source", {}).items():
            table.add_row(f"  {name} · {src}", f"{sm['spearman']:.3f}", f"{sm['mae']:.3f}", f"{sm['accuracy']:.3f}",
                          f"{sm['auc']:.3f}" if "auc" in sm else "—", str(sm["n_test"]))
    out.print(table)
    console.print(f"saved {out_dir}")


@steerlm_app.command("annotate")
def annotate_cmd(value_model: Path = typer.Option(..., "--value-model"),
                 out_dir: Path = typer.Option(..., "--out", "-o", help="Folder for the jsonl files."),
                 model: str = typer.Option(DEFAULT_MODEL, "--model", "-m"),
                 samples: int = typer.Option(2, help="Base-model responses per prompt."),
                 max_per_topic: int = typer.Option(40, help="Chatterbot lines per topic."),
                 human: bool = typer.Option(True, help="Include the corpus's own replies."),
                 vary: list[str] = typer.Option([], help="Extra sampling variant DIR=STRENGTH (repeatable)."),
                 max_new_tokens: int = typer.Option(64), temperature: float = typer.Option(0.8),
                 terse: bool = typer.Option(True, help="Also keep the first sentence of each sample as a record."),
                 humor_corpus: bool = typer.Option(True, help="Add the Mallard corpus's replies to its setups, "
                                                   "humour level from a person's rating."),
                 mismatched: int = typer.Option(2, help="Replies from other conversations per prompt "
                                                "(quality 0 from another topic, 2 from the same; "
                                                "0 = none)."),
                 seed: int = typer.Option(0), engine: str = ENGINE, overwrite: bool = OVERWRITE) -> None:
    """Label chatterbot replies and base-model samples with the value model (TEXT_TO_VALUE / VALUE_TO_TEXT)."""
    from steerlab.core.artifact import load_artifact
    from steerlab.core.atomic import atomic_file, check_folder
    from steerlab.core.steerer import Steer
    from steerlab.methods.steerlm.annotate import annotate, chat_prompts
    from steerlab.methods.steerlm.records import write_records

    files = ("annotated.t2v.jsonl", "annotated.v2t.jsonl", "annotate_summary.json")
    check_folder(out_dir, files, overwrite=overwrite, what="annotated records")
    vm = _value_model(value_model)
    variants: list[object] = [None]
    for item in vary:
        path, _, s = item.rpartition("=")
        if not path:
            raise SteerlabError(f"bad --vary {item!r}: use DIR=STRENGTH")
        try:
            variants.append(Steer(load_artifact(path), float(s)))
        except ValueError:
            raise SteerlabError(f"bad --vary {item!r}: STRENGTH must be a number") from None
    lm = load(model)
    gen = text_engine(engine, model, [v.artifact for v in variants if isinstance(v, Steer)])
    prompts = chat_prompts("train", max_per_topic=max_per_topic, seed=seed)
    examples, summary = annotate(lm, vm, prompts=prompts, samples=samples, include_human=human, variants=variants,
                                 max_new_tokens=max_new_tokens, temperature=temperature, terse=terse,
                                 humor_corpus=humor_corpus, mismatched=mismatched, seed=seed, engine=gen)
    write_records(out_dir / "annotated.t2v.jsonl", examples, vm.schema, "TEXT_TO_VALUE", overwrite=True)
    write_records(out_dir / "annotated.v2t.jsonl", examples, vm.schema, "VALUE_TO_TEXT", overwrite=True)
    with atomic_file(out_dir / "annotate_summary.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps({"prompts": len(prompts), **summary}, indent=2) + "\n")
    console.print(f"{summary['records']} records ({summary['dropped_empty']} empty and "
                  f"{summary['dropped_truncated']} unfinished samples dropped) → {out_dir}")
    console.print_json(data=summary["histogram"])


@steerlm_app.command("relabel")
def relabel_cmd(data: list[Path] = typer.Option(..., "--data", "-d", help="Records jsonl (repeatable)."),
                value_model: Path = typer.Option(..., "--value-model"),
                out: Path = typer.Option(..., "--out", "-o", help="VALUE_TO_TEXT jsonl to write."),
                overwrite: bool = OVERWRITE) -> None:
    """Re-score records with a (newer) value model; labels a person gave (``given``) are kept."""
    from steerlab.core.atomic import check_file_target
    from steerlab.methods.steerlm import read_records
    from steerlab.methods.steerlm.annotate import relabel
    from steerlab.methods.steerlm.records import write_records

    if out.resolve() in {p.resolve() for p in data}:
        raise SteerlabError(f"--out {out} is one of the inputs; write the relabelled records elsewhere")
    check_file_target(out, overwrite=overwrite, what="records file")
    vm = _value_model(value_model)
    examples = [ex for path in data for ex in read_records(path, vm.schema) if ex.response.strip()]
    with console.status(f"re-scoring {len(examples)} records"):
        relabelled, summary = relabel(vm, examples)
    write_records(out, relabelled, vm.schema, "VALUE_TO_TEXT", overwrite=overwrite)
    changed = {a: sum(x.attributes[a] != y.attributes[a] for x, y in zip(examples, relabelled))
               for a in vm.schema.names}
    console.print(f"{summary['records']} records → {out}; changed levels per attribute: {changed}")
    console.print_json(data=summary["histogram"])


def _sft(data: Path = typer.Option(..., "--data", "-d", help="VALUE_TO_TEXT jsonl."),
         out_dir: Path = typer.Option(..., "--out", "-o"),
         model: str = typer.Option("", "--model", "-m", help="Model (default: the --init adapter's packaged "
                                   "model, else smollm2-135m)."),
         contrast_gap: int = typer.Option(0, help="Train only on contrast pairs: per prompt and attribute, "
                                          "the lowest- and highest-labelled responses if this many levels "
                                          "apart (0 = all records)."),
         init: Path | None = typer.Option(None, "--init", help="Continue this adapter (a further round; "
                                          "fixes schema, template, placement, rank and modules)."),
         name: str = typer.Option("steerlm"),
         overwrite: bool = OVERWRITE,
         *,
         config: SFTConfig) -> None:
    from steerlab.methods.steerlm import DEFAULT_SCHEMA, train_sft
    from steerlab.methods.steerlm.sft import round_examples

    if contrast_gap < 0:
        raise SteerlabError(f"--contrast-gap must be >= 0, got {contrast_gap}")
    check_artifact_out(out_dir, overwrite)
    start = _adapter(init) if init is not None else None
    examples = round_examples(data, start.schema if start is not None else DEFAULT_SCHEMA, contrast_gap)
    if contrast_gap:
        console.print(f"contrast subset: {len(examples)} records")
    lm = load(model_for(model, [start] if start is not None else []))
    art = train_sft(lm, examples, name=name, init=start, **config.train_kwargs(continuing=start is not None))
    art.save(out_dir, overwrite=overwrite)
    _report(art, out_dir)


steerlm_app.command("sft")(config_command(
    SFTConfig, _sft, "Attribute-conditioned SFT: a LoRA adapter on prompt + attribute string → response."))


def _report(art: SteerLMAdapter, out_dir: Path) -> None:
    t = art.meta["training"]
    console.print(f"saved {out_dir}: {t['parameters']} LoRA parameters ({t['params_percent_of_model']:.2f}% of the "
                  f"model), {t['examples']} examples ({t['dropped_truncated']} dropped by truncation), loss "
                  f"{t['loss_first']:.3f} → {t['loss_last_20']:.3f}, {t['seconds']:.0f} s")


@steerlm_app.command("bootstrap")
def bootstrap_cmd(adapter: Path = typer.Option(..., "--adapter"),
                  value_model: Path = typer.Option(..., "--value-model"),
                  out_dir: Path = typer.Option(..., "--out", "-o"),
                  data: Path | None = typer.Option(None, "--data", help="Round-1 VALUE_TO_TEXT jsonl to mix in."),
                  samples: int = typer.Option(2), max_per_topic: int = typer.Option(20),
                  max_new_tokens: int = typer.Option(64), lr: float = typer.Option(5e-3),
                  n_steps: int = typer.Option(80), batch_size: int = typer.Option(8),
                  max_length: int = typer.Option(128), seed: int = typer.Option(1),
                  focus: list[str] = typer.Option([], "--focus", help="Knob(s) whose requested value walks its "
                                                  "whole range on each prompt (repeatable); use --samples >= "
                                                  "its range size."),
                  model: str = typer.Option("", "--model", "-m", help="Model (default: the adapter's packaged "
                                            "model)."),
                  engine: str = ENGINE, overwrite: bool = OVERWRITE) -> None:
    """Sample at top quality, re-label with measured values, fine-tune the adapter again."""
    from steerlab.core.atomic import check_file_target
    from steerlab.methods.steerlm.annotate import bootstrap, chat_prompts
    from steerlab.methods.steerlm.records import read_records, write_records

    samples_out = out_dir.with_name(out_dir.name + ".samples.v2t.jsonl")
    check_artifact_out(out_dir, overwrite)
    check_file_target(samples_out, overwrite=overwrite, what="records file")
    art, vm = _adapter(adapter), _value_model(value_model)
    for name in focus:
        art.schema[name]  # unknown knob → clear error before loading the model
    previous = read_records(data, art.schema) if data else []
    model_name = model_for(model, [art])
    lm = load(model_name)
    gen = text_engine(engine, model_name, [art])
    prompts = chat_prompts("train", max_per_topic=max_per_topic, seed=seed)
    better, new, summary = bootstrap(lm, art, vm, prompts=prompts, samples=samples, previous=previous,
                                     max_new_tokens=max_new_tokens, seed=seed, focus=focus, lr=lr, n_steps=n_steps,
                                     batch_size=batch_size, max_length=max_length, engine=gen)
    better.save(out_dir, overwrite=overwrite)
    write_records(samples_out, new, vm.schema, "VALUE_TO_TEXT", overwrite=overwrite)
    _report(better, out_dir)
    console.print_json(data=summary["histogram"])


@steerlm_app.command("digits")
def digits_cmd(adapter: list[Path] = typer.Option(..., "--adapter", help="Adapter(s) to check (repeatable)."),
               attribute: str = typer.Option("humor", "--attribute"),
               data: Path | None = typer.Option(None, "--data", "-d", help="Records jsonl with low and high "
                                                "labels (default for humor: the Mallard setups' replies)."),
               low: int | None = typer.Option(None, help="Low digit (default: the range's bottom)."),
               high: int | None = typer.Option(None, help="High digit (default: the range's top)."),
               limit: int = typer.Option(0, help="Score at most this many low and this many high "
                                         "responses (0 = all)."),
               json_out: Path | None = typer.Option(None, "--json", help="Also write the figures here."),
               seed: int = typer.Option(0),
               model: str = typer.Option("", "--model", "-m", help="Model (default: the adapters' packaged model)."),
               overwrite: bool = OVERWRITE) -> None:
    """Does an adapter read one knob's digit? Likelihood of low vs high responses under both digits."""
    from steerlab.core.atomic import atomic_file, check_file_target
    from steerlab.methods.steerlm import read_records
    from steerlab.methods.steerlm.annotate import humor_corpus_examples
    from steerlab.methods.steerlm.diagnostics import digit_sensitivity

    arts = [_adapter(a) for a in adapter]
    schema = arts[0].schema
    for path, art in zip(adapter[1:], arts[1:]):
        schema.check_same(art.schema, f"adapter {path}")
    schema[attribute]  # unknown knob → clear error before loading anything
    if data is not None:
        examples = read_records(data, schema)
    elif attribute == "humor":
        examples = humor_corpus_examples(schema)
    else:
        raise SteerlabError(f"no packaged records for {attribute!r}: give --data with low and high labels")
    if json_out is not None:
        check_file_target(json_out, overwrite=overwrite, what="JSON file")
    lm = load(model_for(model, arts))
    table = Table("adapter", "effect (nats/token)", "high responses: gain, favoured", "low responses: gain, favoured")
    results = {}
    for path, art in zip(adapter, arts):
        with console.status(f"scoring responses under two digits with {path}"):
            d = digit_sensitivity(lm, art, examples, attribute, low=low, high=high, limit=limit, seed=seed)
        results[str(path)] = d.to_dict()
        table.add_row(str(path), f"{d.effect:+.4f}", f"{d.high_gain:+.4f}, {d.high_favoured:.0%} of {d.n_high}",
                      f"{d.low_gain:+.4f}, {d.low_favoured:.0%} of {d.n_low}")
    out.print(table)
    if json_out is not None:
        with atomic_file(json_out, overwrite=overwrite, what="JSON file") as tmp:
            tmp.write_text(json.dumps(results, indent=2) + "\n")


@steerlm_app.command("eval")
def eval_cmd(adapter: list[Path] = typer.Option([], "--adapter", help="Adapter(s) to compare (repeatable)."),
             value_model: Path = typer.Option(..., "--value-model"),
             out_dir: Path = typer.Option(Path("results/steerlm_control"), "--out", "-o"),
             attribute: list[str] = typer.Option([], "--attribute", help="Only these attributes."),
             n_prompts: int = typer.Option(8), per_topic: int = typer.Option(1, help="Held-out lines per topic "
                                                                             "in the prompt pool."),
             samples: int = typer.Option(2),
             prompting: bool = typer.Option(True, help="Add the prompting baseline (base model, told in words)."),
             independent: bool = typer.Option(True, help="Also score with the independent scorers."),
             rescore: Path | None = typer.Option(None, "--rescore", help="Score the outputs saved in this "
                                                 "controllability.json instead of generating."),
             max_new_tokens: int = typer.Option(64), temperature: float = typer.Option(0.7),
             guidance: float = typer.Option(1.0, help="Classifier-free guidance scale against the adapter "
                                            "at default attributes (1 = off; the prompting baseline is "
                                            "never guided)."),
             seed: int = typer.Option(0),
             model: str = typer.Option("", "--model", "-m", help="Model (default: the adapters' packaged model)."),
             overwrite: bool = OVERWRITE) -> None:
    """Controllability: sweep each attribute 0→4, measure with the value model and independent scorers."""
    from steerlab.core.atomic import check_folder
    from steerlab.eval.controllability import (
        RESULT_FILES,
        held_out_prompts,
        measure_controllability,
        prompting_system,
        save_results,
        steerlm_system,
        to_markdown,
    )
    from steerlab.eval.controllability import rescore as do_rescore

    check_folder(out_dir, RESULT_FILES, overwrite=overwrite, what="controllability results")
    vm = _value_model(value_model)
    if rescore is not None:
        results, info = do_rescore(rescore, vm, attributes=attribute or None, independent=independent)
        save_results(results, {**info, "rescored_with": str(value_model)}, out_dir, overwrite=overwrite)
        out.print(to_markdown(results))
        console.print(f"saved {out_dir}")
        return
    if not adapter:
        raise SteerlabError("give at least one --adapter (or --rescore a saved sweep)")
    if n_prompts < 1 or samples < 1 or per_topic < 1:
        raise SteerlabError("--n-prompts, --samples and --per-topic must be >= 1")
    prompts = held_out_prompts(n_prompts, per_topic, seed)
    arts = [_adapter(a) for a in adapter]
    systems = {}
    for path, art in zip(adapter, arts):
        vm.schema.check_same(art.schema, f"adapter {path}")
        systems[f"steerlm:{path.name}"] = steerlm_system(art)
    if prompting:
        systems["prompting"] = prompting_system(vm.schema)
    lm = load(model_for(model, arts))
    results, info = measure_controllability(lm, systems, vm, prompts, attributes=attribute or None, samples=samples,
                                            max_new_tokens=max_new_tokens, temperature=temperature, seed=seed,
                                            chat=arts[0].chat, guidance=guidance, independent=independent)
    save_results(results, {**info, "adapters": [str(a) for a in adapter]}, out_dir, overwrite=overwrite)
    out.print(to_markdown(results))
    console.print(f"saved {out_dir}")


def register(app: typer.Typer) -> None:
    app.add_typer(steerlm_app, name="steerlm")
