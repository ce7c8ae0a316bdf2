"""Per-sequence sampler chains: grammar constraint first, then greedy or seeded top-p."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labdesk.errors import ModelError
from labdesk.models.grammar import pattern_to_gbnf, schema_to_gbnf
from labdesk.models.types import GenRequest

if TYPE_CHECKING:
    from labdesk.models.engine import Engine


def request_grammar(request: GenRequest) -> str | None:
    if request.schema is not None and request.pattern is not None:
        raise ModelError("a request may carry a schema or a pattern, not both")
    if request.schema is not None:
        return schema_to_gbnf(request.schema)
    if request.pattern is not None:
        return pattern_to_gbnf(request.pattern)
    return None


def make_sampler(engine: Engine, request: GenRequest) -> Any:
    """A new llama.cpp sampler chain for `request` (the caller frees it)."""
    import llama_cpp

    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    grammar = request_grammar(request)
    if grammar is not None:
        constraint = llama_cpp.llama_sampler_init_grammar(
            engine.vocab, grammar.encode("utf-8"), b"root"
        )
        if not constraint:
            llama_cpp.llama_sampler_free(chain)
            raise ModelError("llama.cpp rejected the output grammar", where=grammar[:200])
        llama_cpp.llama_sampler_chain_add(chain, constraint)
    if request.temperature <= 0.0:
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
    else:
        seed = llama_cpp.LLAMA_DEFAULT_SEED if request.seed is None else request.seed
        llama_cpp.llama_sampler_chain_add(
            chain, llama_cpp.llama_sampler_init_temp(request.temperature)
        )
        if request.top_p < 1.0:
            llama_cpp.llama_sampler_chain_add(
                chain, llama_cpp.llama_sampler_init_top_p(request.top_p, 1)
            )
        llama_cpp.llama_sampler_chain_add(
            chain, llama_cpp.llama_sampler_init_dist(seed & 0xFFFFFFFF)
        )
    return chain
