"""The learned parts of the answerer: a listwise candidate ranker and a logistic refusal gate.

Both are linear models over standardised features, stored as JSON (``weights.json`` beside this
file: feature names, means, scales, coefficients; no pickle) and fitted with L2 regularisation by
L-BFGS from zero, so that ``python -m rag train`` reproduces the shipped file exactly.

- The ranker scores every candidate of a question; its softmax over the question's candidates is
  trained towards the candidates' gains (the share of the gold key facts a candidate holds, and
  whether it is the gold passage's sentence).
- The gate maps a question's best-candidate features to the probability that the material answers
  the question; the threshold below which the answer is a refusal is chosen on the training
  questions to keep false refusals at or below a target (cross-validated, ``python -m rag cv``).

What it does not do: non-linear models. With a few hundred labeled questions a regularised linear
model over general signals is what the data supports.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

WEIGHTS = Path(__file__).with_name("weights.json")
logger = logging.getLogger(__name__)


@dataclass
class Linear:
    """w . (x - mean) / scale + b over named features."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    bias: float = 0.0

    def __call__(self, X: np.ndarray) -> np.ndarray:
        if X.size == 0:
            return np.zeros(len(X))
        return ((X - self.mean) / self.scale) @ self.coef + self.bias

    def to_dict(self) -> dict:
        r = lambda a: [round(float(v), 6) for v in a]  # noqa: E731 - stable text, same on every run
        return {"features": list(self.features), "mean": r(self.mean), "scale": r(self.scale), "coef": r(self.coef), "bias": round(float(self.bias), 6)}

    @classmethod
    def from_dict(cls, d: dict, features: tuple[str, ...]) -> Linear:
        if tuple(d["features"]) != tuple(features):
            raise ValueError("weights were trained on other features; run python -m rag train")
        return cls(tuple(d["features"]), np.array(d["mean"]), np.array(d["scale"]), np.array(d["coef"]), float(d.get("bias", 0.0)))


def _standardise(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = X.mean(axis=0) if len(X) else np.zeros(X.shape[1])
    scale = X.std(axis=0) if len(X) else np.ones(X.shape[1])
    scale = np.where(scale < 1e-9, 1.0, scale)
    return np.round(mean, 6), np.round(scale, 6)


def fit_listwise(groups: list[tuple[np.ndarray, np.ndarray]], features: tuple[str, ...], l2: float = 1.0) -> Linear:
    """Fit a ranker: each group is (candidate features, gains >= 0); groups without gain are skipped."""
    from scipy.optimize import minimize

    groups = [(X, g) for X, g in groups if len(X) and g.sum() > 0]
    allx = np.vstack([X for X, _ in groups]) if groups else np.zeros((0, len(features)))
    mean, scale = _standardise(allx)
    Z = [((X - mean) / scale, g / g.sum()) for X, g in groups]

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        total, grad = 0.5 * l2 * float(w @ w), l2 * w
        for Xs, t in Z:
            s = Xs @ w
            s = s - s.max()
            p = np.exp(s)
            p /= p.sum()
            total -= float(t @ np.log(p + 1e-12))
            grad = grad + Xs.T @ (p - t)
        return total, grad

    w0 = np.zeros(len(features))
    res = minimize(loss, w0, jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return Linear(tuple(features), mean, scale, np.round(res.x, 6), 0.0)


def fit_logistic(
    X: np.ndarray, y: np.ndarray, features: tuple[str, ...], l2: float = 1.0, weights: np.ndarray | None = None
) -> Linear:
    """Fit P(y=1 | x) = sigmoid(w . z + b) with an L2 penalty on w (``weights``: per row)."""
    from scipy.optimize import minimize

    mean, scale = _standardise(X)
    Z = (X - mean) / scale
    sw = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    n = float(sw.sum()) or 1.0

    def loss(wb: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = wb[:-1], wb[-1]
        s = Z @ w + b
        p = 1 / (1 + np.exp(-s))
        eps = 1e-12
        total = -float((sw * y) @ np.log(p + eps) + (sw * (1 - y)) @ np.log(1 - p + eps)) / n + 0.5 * l2 * float(w @ w) / n
        gw = Z.T @ (sw * (p - y)) / n + l2 * w / n
        gb = float((sw * (p - y)).sum()) / n
        return total, np.append(gw, gb)

    res = minimize(loss, np.zeros(len(features) + 1), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return Linear(tuple(features), mean, scale, np.round(res.x[:-1], 6), round(float(res.x[-1]), 6))


def sigmoid(s: np.ndarray | float) -> np.ndarray | float:
    return 1 / (1 + np.exp(-s))


def choose_threshold(probs_answerable: np.ndarray, max_false_refusal: float) -> float:
    """The highest threshold that refuses at most ``max_false_refusal`` of the answerable questions."""
    p = np.sort(np.asarray(probs_answerable))
    if not len(p):
        return 0.0
    k = int(np.floor(max_false_refusal * len(p)))  # this many may fall below
    return round(float(p[k]) - 1e-6, 6) if k < len(p) else 0.0


@dataclass
class Model:
    """Everything the answerer learned: ranker, gate, threshold, fusion and composition choices."""

    ranker: Linear
    gate: Linear
    threshold: float
    fusion: dict
    second_ratio: float = 0.8  # a second sentence joins when its share is at least this of the first's
    joiner: Linear | None = None  # P(a further candidate holds a fact the chosen ones lack); rag/answer/join.py
    join_threshold: float = 1.01  # above 1: nothing joins
    meta: dict = field(default_factory=dict)

    def to_json(self) -> str:
        d = {
            "ranker": self.ranker.to_dict(),
            "gate": self.gate.to_dict(),
            "threshold": round(self.threshold, 6),
            "fusion": self.fusion,
            "second_ratio": self.second_ratio,
            "joiner": self.joiner.to_dict() if self.joiner is not None else None,
            "join_threshold": round(self.join_threshold, 6),
            "meta": self.meta,
        }
        return json.dumps(d, ensure_ascii=False, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Model:
        from .features import FEATURES, GATE_FEATURES
        from .join import JOIN_FEATURES

        d = json.loads(text)
        return cls(
            ranker=Linear.from_dict(d["ranker"], FEATURES),
            gate=Linear.from_dict(d["gate"], GATE_FEATURES),
            threshold=float(d["threshold"]),
            fusion=d["fusion"],
            second_ratio=float(d.get("second_ratio", 0.8)),
            joiner=Linear.from_dict(d["joiner"], JOIN_FEATURES) if d.get("joiner") else None,
            join_threshold=float(d.get("join_threshold", 1.01)),
            meta=d.get("meta", {}),
        )


def load_model(path: Path | None = None) -> Model | None:
    """The shipped model, or None when no weights file exists yet (then the answerer's defaults)."""
    p = path or WEIGHTS
    if not p.exists():
        return None
    try:
        return Model.from_json(p.read_text(encoding="utf-8"))
    except (ValueError, KeyError) as e:  # weights of another feature set: answer with the defaults, loudly
        logger.error("ignoring %s (%s); answers use untrained defaults until python -m rag train", p, e)
        return None


def default_model() -> Model:
    """A hand-set start used only before any training (and by ``train`` as fold-0 start)."""
    from .features import FEATURES, GATE_FEATURES

    start = {"cov": 0.62, "overlap": 0.18, "prior": 0.12, "sent_cos": 0.3, "type_ok": 0.5, "is_question": -0.5}
    coef = np.array([start.get(f, 0.0) for f in FEATURES]) * 5
    gcoef = np.array([1.0 if f in ("top_cov", "top_type_ok") else (-1.0 if f == "missing_entity" else 0.0) for f in GATE_FEATURES])
    return Model(
        ranker=Linear(FEATURES, np.zeros(len(FEATURES)), np.ones(len(FEATURES)), coef),
        gate=Linear(GATE_FEATURES, np.zeros(len(GATE_FEATURES)), np.ones(len(GATE_FEATURES)), gcoef * 4, -1.0),
        threshold=0.5,
        fusion={"weights": {"dense": 1.0, "keyword": 1.3, "phrase": 1.0, "sentence": 1.0}, "question_passage": 0.7, "place_mismatch": 0.6},
    )
