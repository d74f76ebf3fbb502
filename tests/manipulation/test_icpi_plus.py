"""icpi+ and the local-Jacobian baseline: the arbiter, the trust region, constrained decoding."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from icpi.core import ScriptedSampler, copy_nearest_example
from icpi.envs import load_task
from icpi.llm.testing import FakeOpenAI, Reply, completion_body
from icpi.manipulation.arbiter import (
    Arbiter,
    ArbiterSettings,
    Candidate,
    Verdict,
    choose,
    decision_record,
    expected_improvement,
)
from icpi.manipulation.config import load_run_config
from icpi.manipulation.local_model import LocalJacobian, TrustRegion
from icpi.manipulation.methods.icpi_plus import (
    ZOOM_MAX,
    correction_grammar,
    decoding_params,
    theta_level,
    too_short,
    zoom_level,
)
from icpi.manipulation.run import run_method


def records(path: Path) -> list[dict]:
    return [json.loads(x) for x in (path / "records.jsonl").read_text().splitlines()]


def cfg(method="icpi+", task="slide", seed=0, iterations=8, **settings):
    return load_run_config(
        {"task": task, "method": method, "seed": seed, "iterations": iterations},
        {"settings": settings},
    )


# ---------------------------------------------------------------------------- local model
def test_local_jacobian_recovers_a_linear_map_and_steps_to_the_goal():
    rng = np.random.default_rng(0)
    span = np.array([1.2, 0.25, 0.6])
    true_j = rng.normal(size=(2, 3))
    steps = rng.normal(size=(12, 3)) * span * 0.1
    neighbours = [{"dtheta": d, "e": -(true_j @ (d / span))} for d in steps]
    centre = (np.zeros(3), np.zeros(2))
    model = LocalJacobian.fit(span, neighbours, [], centre, ridge=0.0)
    np.testing.assert_allclose(model.J, true_j, atol=1e-9)
    e = np.array([0.1, -0.05])
    dz = model.step(e, damping=1e-12)
    np.testing.assert_allclose(model.predict(e, dz), 0.0, atol=1e-9)
    # the minimum-norm solution lies in the row space of J
    np.testing.assert_allclose(dz, np.linalg.pinv(true_j) @ -e, atol=1e-8)


def test_trust_region_grows_shrinks_and_restarts():
    tr = TrustRegion(radius=0.2, low=0.01, high=0.5)
    np.testing.assert_allclose(np.linalg.norm(tr.clip(np.array([3.0, 4.0]))), 0.2)
    tr.update(predicted=0.1, actual=0.09, step=0.2)  # good prediction at the boundary
    assert tr.radius == pytest.approx(0.4)
    tr.update(predicted=0.1, actual=0.01, step=0.1)  # poor prediction
    assert tr.radius == pytest.approx(0.2)
    tr.update(predicted=0.1, actual=-0.05, step=0.2)  # worse: shrink
    assert tr.radius == pytest.approx(0.1)
    for _ in range(6):
        tr.update(predicted=0.1, actual=-0.05, step=tr.radius)
    assert tr.radius >= 0.01  # at its floor it starts over rather than stalling
    assert tr.radius in (tr.initial, pytest.approx(tr.radius))


# ---------------------------------------------------------------------------- icpi+
def test_icpi_plus_arbitrates_model_and_numeric_candidates(tmp_path):
    sampler = ScriptedSampler(
        lambda prompt, n, seed: [*copy_nearest_example(prompt, 1, seed), " prose", " 1 2"][:n]
    )
    summary = run_method(cfg(iterations=8, n_samples=3), tmp_path, sampler=sampler)
    recs = records(tmp_path)
    assert recs[0]["source"] == "initial" and recs[-1]["source"] == "best"
    sources = {r["source"] for r in recs[1:-1]}
    assert sources <= {"model", "jacobian", "lknn20", "perturbation"}
    for r in recs[1:-1]:
        assert r["samples"] == 3 and r["parse_errors"] == ["no_numbers", "arity"]
        assert r["predicted_cost"] is not None and r["radius"] > 0
    # never the same θ twice on a deterministic task, but for the final re-run
    thetas = [tuple(r["theta"]) for r in recs[:-1]]
    assert len(set(thetas)) == len(thetas)
    # the last rollout re-runs the best θ, without a model call
    best = min(recs[:-1], key=lambda r: r["cost"])
    assert recs[-1]["theta"] == best["theta"] and recs[-1]["model_calls"] == 0
    assert len(sampler.calls) == 6  # iterations 1..6
    assert summary["final_cost"] == summary["best_cost"]


def test_expected_improvement_counts_the_cost_as_a_norm():
    best = 0.01
    near = expected_improvement(best, np.zeros(2), 1e-4)
    assert near == pytest.approx(best, rel=0.02)  # a sure hit gains the whole best cost
    # a prediction of zero far more uncertain than the best cost rarely lands inside it
    assert expected_improvement(best, np.zeros(2), 0.1) < 0.01 * best
    assert expected_improvement(best, np.array([0.02, 0.0]), 1e-4) == 0.0


def test_when_nothing_can_improve_the_most_cautious_candidate_is_chosen():
    # far below what a prediction resolves every expected improvement is zero: the tie goes
    # to the smallest predicted cost plus uncertainty, not to the first candidate
    def verdict(cost, sigma):
        e = np.array([cost, 0.0])
        return Verdict(e, sigma, 0.0, e, sigma, None, None)

    assert choose([verdict(0.3, 0.2), verdict(0.001, 0.001), verdict(0.0, 0.01)]) == 1


def test_an_untried_model_wins_only_by_the_margin():
    def verdict(score):
        e = np.array([0.01, 0.0])
        return Verdict(e, 0.01, score, e, 0.01, None, None)

    sources = ["model", "lknn20", "jacobian"]
    close = [verdict(1.05), verdict(1.0), verdict(0.5)]
    assert choose(close, sources) == 0  # no margin: the higher expected improvement
    assert choose(close, sources, margin=0.1) == 1  # 5 % is not clear enough
    clear = [verdict(1.2), verdict(1.0), verdict(0.5)]
    assert choose(clear, sources, margin=0.1) == 0
    numeric = [verdict(0.5), verdict(1.0), verdict(1.2)]
    assert choose(numeric, sources, margin=0.1) == 2  # it concerns the model alone
    assert cfg(untried_margin="0.1").settings.untried_margin == 0.1
    with pytest.raises(Exception, match="untried_margin"):
        cfg(untried_margin="-0.1")


def test_a_source_that_delivers_earns_trust_and_one_that_fails_loses_it():
    arb = Arbiter()
    model = LocalJacobian(J=np.eye(2), pairs=10)
    e_best = np.array([0.1, 0.0])
    # the model claims its step reaches the goal; the outcome model predicts 5 cm off
    cands = [Candidate("model", np.array([-0.05, 0.0])), Candidate("jacobian", -e_best)]
    before = arb.judge(cands, model, e_best, residual=0.5)
    decision = decision_record(cands[0], before[0], corrected=0.1)
    for _ in range(3):
        arb.learn(decision, np.array([0.001, 0.0]))  # the claim came true
    good = arb.scale("model")
    after = arb.judge(cands, model, e_best, residual=0.5)
    assert good < 0.6 * arb.settings.prior_claim
    assert after[0].score > after[1].score  # the outcome model no longer decides alone
    for _ in range(3):
        arb.learn(decision, np.array([0.2, 0.0]))  # the claims fail
    assert arb.scale("model") > 2 * arb.settings.prior_claim
    assert arb.judge(cands, model, e_best, residual=0.5)[0].score < after[0].score


def test_samples_that_agree_earn_the_first_rollout_and_a_miss_takes_it_back():
    # the first decision, before any record: the model's long step, which the outcome model
    # predicts 5 cm off, against lknn20's shorter one that the same neighbours predict 2 cm off
    arb = Arbiter()
    model = LocalJacobian(J=np.eye(2), pairs=10)
    e_best = np.array([0.4, 0.0])

    def first_decision(scatter):
        spread = 0.25 * 0.4 if scatter is None else scatter / 2  # 4 samples
        cands = [
            Candidate("model", np.array([-0.45, 0.0]), spread=spread, scatter=scatter),
            Candidate("jacobian", -e_best),
            Candidate("lknn20", np.array([-0.38, 0.0]), spread=0.25 * 0.4),
        ]
        verdicts = arb.judge(cands, model, e_best, residual=0.25)
        return cands, verdicts, choose(verdicts)

    assert first_decision(0.0)[2] == 0  # n samples that agree: the model's step
    assert first_decision(0.01)[2] == 0
    # samples that scatter as much as an untried source is trusted, or a single answer,
    # bring no evidence: the numbers' candidate, as before
    assert first_decision(arb.settings.prior_claim * 0.4)[2] == 2
    assert first_decision(None)[2] == 2
    # a model that agrees with itself and misses loses the next decision
    cands, verdicts, win = first_decision(0.0)
    arb.learn(decision_record(cands[win], verdicts[win], corrected=0.4), np.array([0.3, 0.0]))
    assert first_decision(0.0)[2] != 0


def test_with_contradiction_samples_that_agree_on_a_step_put_far_off_do_not_win():
    # SmolLM2's failure: four samples agree (a precise claim), on a step that the outcome
    # model, sure of itself, predicts lands halfway; lknn20's step it predicts 2 cm off
    model = LocalJacobian(J=np.eye(2), pairs=10)
    e_best = np.array([0.4, 0.0])
    cands = [
        Candidate("model", np.array([-0.2, 0.0]), spread=0.0, scatter=0.0),
        Candidate("lknn20", np.array([-0.38, 0.0]), spread=0.25 * 0.4),
    ]
    untested = Arbiter(ArbiterSettings(contradiction=False))
    assert choose(untested.judge(cands, model, e_best, residual=0.05)) == 0
    tested = Arbiter()  # the default
    verdicts = tested.judge(cands, model, e_best, residual=0.05)
    assert choose(verdicts) == 1
    # the contradicted claim now counts for little: the prediction is the outcome model's
    assert np.linalg.norm(verdicts[0].predicted) == pytest.approx(0.2, rel=0.05)
    # a step the outcome model puts within its own uncertainty of the claim still wins
    close = [dataclasses.replace(cands[0], dz=np.array([-0.398, 0.0])), cands[1]]
    assert choose(tested.judge(close, model, e_best, residual=0.05)) == 0
    # on by default; `icpi+[contradiction=false]` turns it off
    assert cfg().settings.contradiction and not cfg(contradiction="false").settings.contradiction


def test_below_one_the_contradiction_tolerance_tests_claims_the_outcome_model_half_explains():
    # agreeing samples claim the goal; the outcome model puts the step 2 cm off, about its
    # own uncertainty: tolerance 1 lets the claim stand, 0.5 takes it as contradicted
    model = LocalJacobian(J=np.eye(2), pairs=10)
    e_best = np.array([0.4, 0.0])
    step = [Candidate("model", np.array([-0.38, 0.0]), spread=0.0, scatter=0.0)]

    def predicted(tolerance):
        arb = Arbiter(ArbiterSettings(contradiction_tolerance=tolerance))
        verdict = arb.judge(step, model, e_best, residual=0.02 / 0.38)[0]
        return float(np.linalg.norm(verdict.predicted))

    assert predicted(1.0) < 0.001  # the default: the claim, as precise as the samples agree
    assert 0.005 < predicted(0.5) < 0.02  # between the claim and the outcome model's 2 cm
    assert cfg(contradiction_tolerance="0.6").settings.contradiction_tolerance == 0.6
    assert cfg().settings.contradiction_tolerance == ArbiterSettings.contradiction_tolerance
    with pytest.raises(Exception, match="contradiction_tolerance"):
        cfg(contradiction_tolerance="-1")


def test_the_outcome_prior_scales_the_outcome_models_uncertainty_until_its_record_speaks():
    model = LocalJacobian(J=np.eye(2), pairs=10)
    e_best = np.array([0.1, 0.0])
    step = [Candidate("jacobian", np.array([-0.1, 0.0]))]

    def sigma(arb):
        return arb.judge(step, model, e_best, residual=0.5)[0].sigma

    wide, tight = Arbiter(), Arbiter(ArbiterSettings(outcome_prior=0.5))
    assert wide.scale("outcome_model") == 1.0 and tight.scale("outcome_model") == 0.5
    assert sigma(tight) == pytest.approx(0.5 * sigma(wide))
    # a record overrules either prior: after many predictions that came true to a tenth
    # of their uncertainty, both scales approach 0.1
    decision = decision_record(step[0], wide.judge(step, model, e_best, 0.5)[0], 0.1)
    miss = np.asarray(decision["model_error"]) + np.array([0.1 * decision["model_sigma"], 0.0])
    for arb in (wide, tight):
        for _ in range(200):
            arb.learn(decision, miss)
    assert wide.scale("outcome_model") == pytest.approx(0.1, abs=0.03)
    assert tight.scale("outcome_model") == pytest.approx(0.1, abs=0.03)
    # the method spec sets it; a scale that is not positive is refused
    assert cfg(outcome_prior="0.6").settings.outcome_prior == 0.6
    assert cfg().settings.outcome_prior == ArbiterSettings.outcome_prior
    with pytest.raises(Exception, match="outcome_prior"):
        cfg(outcome_prior="0")


def test_samples_that_scatter_beyond_the_agreement_limit_claim_no_more_than_one_answer():
    best = 0.4
    # the default: four samples' median is known to half their scatter, however wide
    assert Arbiter().agreement_evidence(0.08, 4, best) == (0.08, 0.04)
    strict = Arbiter(ArbiterSettings(agreement=0.15))
    assert strict.agreement_evidence(0.04, 4, best) == (0.04, 0.02)  # they agree
    # scatter 0.2 of the error: judged as a single answer (untried prior, unknown spread)
    assert strict.agreement_evidence(0.08, 4, best) == (None, pytest.approx(0.25 * best))
    # samples wider than a single answer keep their own (larger) spread
    assert strict.agreement_evidence(0.4, 4, best) == (None, 0.2)

    # a candidate so judged is no more precise than lknn20's single answer beside it
    model = LocalJacobian(J=np.eye(2), pairs=10)
    e_best = np.array([best, 0.0])
    step = np.array([-best, 0.0])
    scatter, spread = strict.agreement_evidence(0.08, 4, best)
    wide = Candidate("model", step, spread=spread, scatter=scatter)
    single = Candidate("lknn20", step, spread=0.25 * best)
    v_model, v_lknn = strict.judge([wide, single], model, e_best, residual=0.05)
    assert v_model.sigma == pytest.approx(v_lknn.sigma)
    # without the limit the same samples count as agreeing: more precise than one answer
    agreeing = dataclasses.replace(wide, spread=0.04, scatter=0.08)
    assert Arbiter().judge([agreeing], model, e_best, residual=0.05)[0].sigma < v_lknn.sigma
    assert cfg(agreement="0.15").settings.agreement == 0.15
    assert cfg().settings.agreement is None
    with pytest.raises(Exception, match="agreement"):
        cfg(agreement="0")


def test_an_untried_models_short_step_claims_nothing():
    lknn = np.array([0.3, -0.4, 0.0])  # length 0.5
    assert too_short(np.array([0.0, 0.35, 0.0]), lknn, 0.8)  # 0.35 < 0.4
    assert not too_short(np.array([0.0, 0.45, 0.0]), lknn, 0.8)
    assert not too_short(np.zeros(3), lknn, 0.0)  # off: nothing is too short
    # a model step that claims nothing is judged as the Jacobian's step would be
    model = LocalJacobian(J=np.eye(2), pairs=10)
    e_best = np.array([0.4, 0.0])
    step = np.array([-0.2, 0.0])
    agreeing = Candidate("model", step, spread=0.01, scatter=0.02)
    silent = dataclasses.replace(agreeing, claims=False)
    arb = Arbiter()
    v_claim, v_silent, v_jac = arb.judge(
        [agreeing, silent, Candidate("jacobian", step)], model, e_best, residual=0.5
    )
    assert v_silent.claim is None and v_silent.score == v_jac.score
    np.testing.assert_array_equal(v_silent.predicted, v_jac.predicted)
    assert v_claim.score > v_silent.score  # the agreeing claim would have promised more
    # and its rollout adds nothing to the model's record (it claimed nothing)
    arb.learn(decision_record(silent, v_silent, corrected=0.4), np.array([0.1, 0.0]))
    assert "model" not in arb.records and "outcome_model" in arb.records
    assert cfg(short_step="0.8").settings.short_step == 0.8
    assert cfg().settings.short_step == 0.0
    with pytest.raises(Exception, match="short_step"):
        cfg(short_step="-0.1")


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    from icpi.manipulation.calibration import OptimumStore, serve

    with serve(0, OptimumStore(tmp_path_factory.mktemp("optima"))) as endpoint:
        yield endpoint


def test_a_perfect_proposer_wins_at_once_and_a_random_one_costs_little(calibration, tmp_path):
    from icpi.llm import LLMConfig

    def run(proposer, iterations):
        llm, settings = None, {"model": "off"}
        if proposer is not None:
            llm = LLMConfig(
                base_url=calibration.base_url, model=proposer, cache_path=tmp_path / "c"
            )
            settings = {}
        out = tmp_path / f"{proposer}-{iterations}"
        run_method(cfg(task="slide-gc", seed=102, iterations=iterations, **settings), out, llm=llm)
        return records(out)

    perfect = run("calibration-sigma0", 3)
    assert min(r["cost"] for r in perfect) < 0.005 and perfect[1]["source"] == "model"
    noise = run("calibration-random", 10)
    alone = run(None, 10)
    assert noise[-1]["cost"] <= 1.5 * alone[-1]["cost"]


def test_zoom_lets_a_perfect_proposer_say_a_correction_finer_than_the_grid(calibration, tmp_path):
    from icpi.llm import LLMConfig

    def run(zoom):
        llm = LLMConfig(
            base_url=calibration.base_url, model="calibration-sigma0", cache_path=tmp_path / "c"
        )
        out = tmp_path / f"zoom-{zoom}"
        settings = {"zoom": zoom, "sensitivity": False}
        run_method(cfg(task="slide-gc", seed=102, iterations=6, **settings), out, llm=llm)
        return records(out)

    zoomed, fixed = run(True), run(False)
    # permille from θ0: the first perfect step lands a few mm off, on the permille grid
    assert zoomed[1]["units"] == fixed[1]["units"] == {"theta_steps": 1000, "e_unit": 0.001}
    assert 0.001 < zoomed[1]["cost"] == fixed[1]["cost"] < 0.01
    # then the prompt refines its units, and the proposer's answers in them land closer
    finer = [r for r in zoomed[2:-1] if r["units"]["theta_steps"] > 1000]
    assert finer and any(r["source"] == "model" for r in finer)
    assert min(r["cost"] for r in zoomed) < 0.1 * min(r["cost"] for r in fixed)
    assert all(r["units"]["theta_steps"] == 1000 for r in fixed[1:-1])


def test_theta_units_fine_enough_for_the_task_let_the_first_perfect_step_land(
    calibration, tmp_path
):
    from icpi.llm import LLMConfig

    def run(sensitivity):
        llm = LLMConfig(
            base_url=calibration.base_url, model="calibration-sigma0", cache_path=tmp_path / "c"
        )
        out = tmp_path / f"sensitivity-{sensitivity}"
        settings = {"sensitivity": sensitivity}
        run_method(cfg(task="slide-gc", seed=102, iterations=3, **settings), out, llm=llm)
        return records(out)

    fine, coarse = run(True), run(False)
    # millimetres either way; θ finer than permille where a permille moves the puck > 0.1 mm
    assert coarse[1]["units"] == {"theta_steps": 1000, "e_unit": 0.001}
    assert fine[1]["units"]["theta_steps"] >= 10_000 and fine[1]["units"]["e_unit"] == 0.001
    assert fine[1]["source"] == coarse[1]["source"] == "model"
    assert fine[1]["cost"] < 0.001 < coarse[1]["cost"]


def test_judge_off_takes_the_models_candidate(tmp_path):
    sampler = ScriptedSampler([" 30 -20 10", " -20 40 10", " 10 10 -30"])  # θ never repeats
    run_method(cfg(iterations=5, judge="off", n_samples=1), tmp_path, sampler=sampler)
    assert [r["source"] for r in records(tmp_path)[1:-1]] == ["model"] * 3


def test_model_off_makes_no_model_call_and_needs_no_endpoint(tmp_path):
    # no sampler and no endpoint given: a model-using method would start the embedded model
    summary = run_method(cfg(iterations=6, model="off"), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["llm"] is None and not (tmp_path / "llm_calls.jsonl").exists()
    assert all(r["model_calls"] == 0 for r in records(tmp_path))
    assert summary["iterations"] == 6


@pytest.mark.parametrize("model", ["off", "on"])
def test_killed_icpi_plus_run_resumes_exactly(model, tmp_path):
    # the arbiter's records and the θ already rolled out are rebuilt from the buffer
    def go(out):
        sampler = ScriptedSampler(copy_nearest_example) if model == "on" else None
        return run_method(cfg(iterations=10, model=model), out, sampler=sampler)

    full = tmp_path / "full"
    go(full)
    part = tmp_path / "part"
    go(part)
    lines = (part / "attempts.jsonl").read_text().splitlines()
    (part / "attempts.jsonl").write_text("\n".join(lines[:5]) + "\n")  # header + 4 attempts
    (part / "records.jsonl").write_text("")
    (part / "summary.json").unlink()
    go(part)

    def untimed(recs):
        return [{k: v for k, v in r.items() if not k.endswith("_s")} for r in recs]

    assert untimed(records(part)) == untimed(records(full))


def test_jacobian_baseline_proposes_from_the_best(tmp_path):
    run_method(cfg(method="jacobian", iterations=10), tmp_path)
    recs = records(tmp_path)
    assert all(r["source"] == "jacobian" for r in recs[1:])
    assert min(r["cost"] for r in recs) < 0.5 * recs[0]["cost"]


# ---------------------------------------------------------------------------- zoom
def test_the_prompts_units_refine_tenfold_per_tenfold_fall_of_the_best_cost():
    mm = 0.001
    costs = (0.5, 0.01, 0.0099, 0.001, 0.00099, 1e-4, 1e-5)
    assert [zoom_level(c, mm) for c in costs] == [0, 0, 1, 1, 2, 2, 3]
    assert zoom_level(1e-9, mm) == ZOOM_MAX == 3 and zoom_level(0.0, mm) == ZOOM_MAX
    assert zoom_level(0.05, 0.01) == 1  # 5 cm reads five centimetres: millimetres then


def test_theta_units_refine_until_one_step_moves_the_outcome_a_tenth_of_an_e_unit():
    mm = 0.001
    # 25 mm per permille of the push duration (slide-gc near its optimum): 1/10^6 of the
    # range moves the puck 0.025 mm, below a tenth of a millimetre
    J = np.array([[0.0, 0.5, 25.0], [0.4, 0.0, 2.0]])  # m per unit of normalised θ
    assert theta_level(J, 1000, mm, 0) == 3
    assert theta_level(J / 100, 1000, mm, 0) == 1  # 0.25 mm per permille
    assert theta_level(J / 1000, 1000, mm, 0) == 0  # 0.025 mm per permille: fine already
    assert theta_level(J / 1000, 1000, mm, 2) == 2  # never coarser than e's units
    assert theta_level(J * 100, 1000, mm, 0) == ZOOM_MAX  # at most ZOOM_MAX
    assert theta_level(J * np.nan, 1000, mm, 1) == 1  # no model: e's units


@pytest.mark.parametrize("zoom", [True, False])
def test_a_zoomed_prompt_says_its_units_and_its_answer_is_read_in_them(zoom, tmp_path):
    # metres as the e unit: a slide error of ~0.4 m reads 0 m, two levels above centimetres
    sampler = ScriptedSampler([" 500 -500 500"])
    settings = {"e_unit": 1.0, "judge": "off", "n_samples": 1, "zoom": zoom, "sensitivity": False}
    run_method(cfg(iterations=3, **settings), tmp_path, sampler=sampler)
    recs = records(tmp_path)
    level = zoom_level(recs[0]["cost"], 1.0) if zoom else 0
    steps, e_unit = 1000 * 10**level, 1.0 / 10**level
    assert level == (2 if zoom else 0)
    assert recs[1]["source"] == "model"
    assert recs[1]["units"] == {"theta_steps": steps, "e_unit": pytest.approx(e_unit)}
    assert recs[0]["units"] is None and recs[2]["units"] is None  # no model asked
    attempt = json.loads((tmp_path / "attempts.jsonl").read_text().splitlines()[2])["attempt"]
    header = attempt["prompt"].splitlines()[0]
    theta_unit = "1/100000 of range" if zoom else "permille of range"
    assert header.startswith(f"Parameters ({theta_unit}) and error ({'cm' if zoom else 'm'})")
    spec = load_task("slide").theta_spec
    span = np.asarray(spec.high) - np.asarray(spec.low)
    step = np.subtract(recs[1]["theta"], recs[0]["theta"])
    if zoom:  # 500 of 100000 steps: half a percent of each range
        np.testing.assert_allclose(step, np.array([500, -500, 500]) / steps * span, atol=1e-12)
    else:  # permille: half of each range, clipped to the box
        assert np.all(np.abs(step) > 0.1 * span)


def test_model_off_neither_zooms_nor_records_units(tmp_path):
    run_method(cfg(iterations=4, model="off"), tmp_path)
    assert all(r["units"] is None for r in records(tmp_path))


# ---------------------------------------------------------------------------- decoding
def test_grammar_ends_with_the_line_terminator():
    g = correction_grammar(3, 100)
    assert g.startswith('root ::= " "? num " " num " " num "\\n"')
    assert 'num ::= "-"? [0-9] [0-9]? [0-9]?' in g


@pytest.mark.parametrize(("zoom", "finest"), [(True, 10**6), (False, 1000)])
def test_constrained_decoding_admits_the_finest_zoom_levels_answers(zoom, finest):
    settings = cfg(zoom=zoom, sensitivity=zoom).settings
    grammar = decoding_params(dataclasses.replace(settings, constrain="gbnf"), 3)
    digits = len(str(finest))
    assert f'num ::= "-"? [0-9]{" [0-9]?" * (digits - 1)}\n' in grammar["extra_body"]["grammar"]
    json_ = decoding_params(dataclasses.replace(settings, constrain="json"), 3)
    items = json_["extra_body"]["response_format"]["json_schema"]["schema"]["items"]
    assert (items["minimum"], items["maximum"]) == (-finest, finest)


@pytest.mark.parametrize(
    ("constrain", "key"),
    [("gbnf", "grammar"), ("vllm", "structured_outputs"), ("json", "response_format")],
)
def test_constrained_decoding_reaches_the_request_and_the_cache_key(constrain, key, tmp_path):
    fake = FakeOpenAI()
    fake.set(Reply(body=completion_body(" 1 0 0")))
    from icpi.llm import LLMConfig

    llm = LLMConfig(base_url=fake.base_url, model="m", cache_path=tmp_path / "c.sqlite3")
    try:
        run_method(cfg(iterations=3, n_samples=1, constrain=constrain), tmp_path / "a", llm=llm)
        run_method(cfg(iterations=3, n_samples=1), tmp_path / "b", llm=llm)
    finally:
        fake.close()
    bodies = [r["body"] for r in fake.requests if r["path"].endswith("completions")]
    assert key in bodies[0] and all(key not in b for b in bodies[1:])
    expected = decoding_params(cfg(constrain=constrain).settings, 3)["extra_body"][key]
    assert bodies[0][key] == expected
    keys_a = {json.loads(x)["key"] for x in (tmp_path / "a" / "llm_calls.jsonl").open()}
    keys_b = {json.loads(x)["key"] for x in (tmp_path / "b" / "llm_calls.jsonl").open()}
    assert not keys_a & keys_b  # the grammar is part of the cache key


@pytest.mark.slow
def test_gbnf_answers_of_the_embedded_model_always_parse(tmp_path):
    pytest.importorskip("llama_cpp")
    run_method(cfg(task="ball-roll-gc", iterations=4, n_samples=2, constrain="gbnf"), tmp_path)
    recs = records(tmp_path)[1:-1]
    assert sum(r["samples"] for r in recs) == 4
    assert all(r["parse_errors"] == [] and r["model_candidates"] >= 1 for r in recs)


@pytest.mark.slow
def test_icpi_plus_without_the_model_beats_lknn20_on_final_cost(tmp_path):
    finals = {"icpi+": [], "lknn20": []}
    for seed in range(6):
        for method, extra in (("icpi+", {"model": "off"}), ("lknn20", {})):
            out = tmp_path / method / str(seed)
            s = run_method(
                cfg(method=method, task="ball-roll-gc", seed=seed, iterations=15, **extra), out
            )
            finals[method].append(s["final_cost"])
    assert np.mean(finals["icpi+"]) < np.mean(finals["lknn20"]), finals


def test_a_budget_of_one_is_theta0_alone(tmp_path):
    run_method(cfg(iterations=1, model="off"), tmp_path)
    assert [r["source"] for r in records(tmp_path)] == ["initial"]


def test_the_papers_icpi_takes_final_best_too(tmp_path):
    sampler = ScriptedSampler(copy_nearest_example)
    summary = run_method(
        cfg(method="icpi", iterations=5, final_best="true"), tmp_path, sampler=sampler
    )
    recs = records(tmp_path)
    assert recs[-1]["source"] == "best" and summary["final_cost"] == summary["best_cost"]
    assert len(sampler.calls) == 3  # θ0 and the re-run ask no model


# ---------------------------------------------------------------------------- escape
def test_a_search_stuck_short_of_success_escapes_with_lknn20s_own_step(tmp_path):
    # rope-swing seed 105 (a tuning seed of `escape`): from the best θ every step fails,
    # 37 mm after rollout 2; lknn20's own step from the last rollout leaves the trap
    ends = {}
    for escape in (0, 5):
        out = tmp_path / str(escape)
        ends[escape] = run_method(
            cfg(task="rope-swing", seed=105, iterations=20, model="off", escape=escape), out
        )["final_cost"]
        recs = records(out)
        best = np.minimum.accumulate([r["cost"] for r in recs])
        escapes = [i for i, r in enumerate(recs) if r["source"] == "escape"]
        assert bool(escapes) == (escape > 0)
        for i in escapes:  # only after 5 rollouts without a new best, and short of 5 mm
            since = i - 1 - int(np.argmin([r["cost"] for r in recs[:i]]))
            assert since >= 5 and best[i - 1] >= 0.005
        thetas = [tuple(r["theta"]) for r in recs[:-1]]
        assert len(set(thetas)) == len(thetas)  # never the same θ twice
    assert ends[5] < 0.005 < ends[0], ends


def test_an_escape_rollout_asks_no_model(tmp_path):
    sampler = ScriptedSampler([" 0 0 0"])  # the model stands still: the search stalls
    run_method(
        cfg(task="rope-swing", seed=105, iterations=12, n_samples=1), tmp_path, sampler=sampler
    )
    recs = records(tmp_path)
    escapes = [r for r in recs if r["source"] == "escape"]
    assert escapes and all(r["model_calls"] == 0 for r in escapes)
    assert all(r["model_calls"] == 1 for r in recs[1:-1] if r["source"] != "escape")


def test_escape_must_not_be_negative():
    with pytest.raises(ValueError, match="escape"):
        cfg(escape=-1)


def test_a_run_from_before_the_newer_settings_is_extended_with_its_rollouts_kept(tmp_path):
    run_method(cfg(iterations=3, model="off"), tmp_path)
    before = records(tmp_path)
    # as an earlier version wrote it: without the settings added since
    config = json.loads((tmp_path / "config.json").read_text())
    lines = (tmp_path / "attempts.jsonl").read_text().split("\n")
    header = json.loads(lines[0])
    for settings in (config["run"]["settings"], header["fingerprint"]["run"]["settings"]):
        for key in ("agreement", "untried_margin", "outcome_prior", "contradiction_tolerance"):
            del settings[key]
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "attempts.jsonl").write_text("\n".join([json.dumps(header), *lines[1:]]))
    with pytest.raises(Exception, match="another configuration"):
        run_method(cfg(iterations=5, model="off", untried_margin="0.1"), tmp_path)
    run_method(cfg(iterations=5, model="off"), tmp_path)  # today's defaults: as it ran
    after = records(tmp_path)
    assert len(after) == 5
    assert [r["theta"] for r in after[:3]] == [r["theta"] for r in before]
    assert (
        json.loads((tmp_path / "config.json").read_text())["run"]["settings"]["agreement"] is None
    )
