"""The ``hf`` rollout: a transformers-``generate`` server in verl 0.9.1's server-mode rollout API.

verl's rollout has two halves, and this module provides both, shaped like the vLLM ones
(``verl/workers/rollout/vllm_rollout/``):

- :class:`HFReplica` (``RolloutReplicaRegistry`` name ``hf``) starts one Ray actor,
  :class:`HFRolloutServer`, per replica. The agent loop sends it ``generate`` requests (token ids
  in, token ids and log-probs out, images as PIL) through verl's load balancer.
- :class:`HFServerAdapter` (``get_rollout_class("hf", "async")``) lives inside each trainer worker
  (``ActorRolloutRefWorker.rollout``). In the sync trainer, after every actor update,
  ``update_weights(mode="naive")`` hands it the FSDP engine's full-tensor generator
  (``get_per_tensor_param``); the adapter streams the tensors, in buckets of
  ``checkpoint_engine.update_weights_bucket_megabytes``, to its server, which copies them into
  the generation model (the hf equivalent of vLLM's ``update_weights_from_ipc``). Every trainer
  rank consumes the generator (its ``full_tensor()`` calls are collectives); only the rank that
  owns the server sends.

Requests are served one at a time per replica (an ``asyncio`` lock; the work runs in a thread so
weight updates and control calls stay responsive). Sleep/wake-up and KV-cache calls are no-ops:
on a CPU there is no device memory to hand back to the trainer.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Generator, Optional

import ray
import torch

from verl.utils.config import omega_conf_to_dataclass
from verl.workers.config import HFModelConfig, RolloutConfig
from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.replica import RolloutReplica, TokenOutput

from .hf_generate import build_model_inputs, generate_one, resolve_max_tokens

logger = logging.getLogger(__name__)
logger.setLevel(os.getenv("VERL_LOGGING_LEVEL", "WARN"))

_SERVER_PREFIX = "hf_server"


def server_actor_name(replica_rank: int, name_suffix: str = "", role: str = "") -> str:
    """Ray actor name of a replica's server; the adapter finds its server by this name."""
    role_part = f"{role}_" if role else ""
    return f"{_SERVER_PREFIX}_{role_part}{replica_rank}{name_suffix}"


def _torch_dtype(name: str) -> torch.dtype:
    from verl.utils.torch_dtypes import PrecisionType

    return PrecisionType.to_dtype(name)


def load_generation_model(model_config: HFModelConfig, dtype: torch.dtype) -> torch.nn.Module:
    """The generation model, from the same folder and with the same overrides as the actor, on the
    platform's accelerator when this process sees one (on a GPU host the server process sees the GPUs of
    its node: Ray leaves ``CUDA_VISIBLE_DEVICES`` alone for an actor that asks for none), else the CPU."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    from verl.utils.device import get_device_name, get_torch_device

    hf_config = model_config.hf_config
    auto_cls = AutoModelForImageTextToText if getattr(hf_config, "vision_config", None) else AutoModelForCausalLM
    attn = (model_config.override_config or {}).get("attn_implementation", "sdpa")
    model = auto_cls.from_pretrained(
        model_config.local_path,
        dtype=dtype,
        attn_implementation=attn,
        trust_remote_code=model_config.trust_remote_code,
    )
    device = get_device_name() if get_torch_device().is_available() else "cpu"
    return model.to(device).eval()


class HFRolloutServer:
    """One replica's generation engine (a Ray actor; see the module docstring)."""

    def __init__(self, config: RolloutConfig, model_config: HFModelConfig, replica_rank: int) -> None:
        from verl.workers.rollout.utils import get_max_position_embeddings, get_vision_placeholder_token_ids

        self.config: RolloutConfig = omega_conf_to_dataclass(config)
        self.model_config: HFModelConfig = omega_conf_to_dataclass(model_config, dataclass_type=HFModelConfig)
        self.replica_rank = replica_rank
        self.model = load_generation_model(self.model_config, _torch_dtype(self.config.dtype))
        self.processor = self.model_config.processor
        self.tokenizer = self.model_config.tokenizer
        self.max_model_len = int(
            self.config.max_model_len or get_max_position_embeddings(self.model_config.hf_config)
        )
        self.banned_token_ids = get_vision_placeholder_token_ids(self.processor) if self.processor else []
        generation_eos = getattr(self.model.generation_config, "eos_token_id", None)
        self.eos_token_ids = generation_eos if generation_eos is not None else self.tokenizer.eos_token_id
        self.pad_token_id = self.tokenizer.pad_token_id
        self.global_steps: Optional[int] = None
        self._lock = asyncio.Lock()
        self._params = dict(self.model.named_parameters())
        self._state_keys = set(self.model.state_dict().keys())
        self._received: set[str] = set()
        self._requests = 0

    # --- generation -----------------------------------------------------------------------------
    async def generate(
        self,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        request_id: str,
        image_data: Optional[list[Any]] = None,
        video_data: Optional[list[Any]] = None,
        audio_data: Optional[list[Any]] = None,
        mm_processor_kwargs: Optional[dict[str, Any]] = None,
        priority: int = 0,
        **_: Any,
    ) -> TokenOutput:
        """Token-in, token-out generation (same signature as ``vLLMHttpServer.generate``)."""
        if video_data or audio_data:
            raise NotImplementedError(f"request {request_id}: the hf rollout supports text and images only")
        sampling_params = dict(sampling_params)
        seed = None
        if self.config.full_determinism:
            seed = self.replica_rank + self.config.seed
        async with self._lock:
            result = await asyncio.to_thread(
                self._generate_sync, prompt_ids, sampling_params, image_data, mm_processor_kwargs, seed
            )
            self._requests += 1
        return TokenOutput(
            token_ids=result.token_ids,
            log_probs=result.log_probs,
            stop_reason="completed",
            extra_fields={"global_steps": self.global_steps, "finish_reason": result.finish_reason},
        )

    def _generate_sync(self, prompt_ids, sampling_params, images, mm_processor_kwargs, seed):
        inputs = build_model_inputs(self.processor, prompt_ids, images, mm_processor_kwargs)
        max_tokens = resolve_max_tokens(
            sampling_params,
            prompt_len=inputs["input_ids"].shape[1],
            prompt_length=self.config.prompt_length,
            response_length=self.config.response_length,
            max_model_len=self.max_model_len,
        )
        dtype = next(self.model.parameters()).dtype
        for key in ("pixel_values", "pixel_values_videos"):
            if key in inputs:
                inputs[key] = inputs[key].to(dtype)
        inputs = {key: value.to(self.model.device) for key, value in inputs.items()}
        return generate_one(
            self.model,
            inputs,
            sampling_params,
            max_tokens=max_tokens,
            eos_token_ids=self.eos_token_ids,
            pad_token_id=self.pad_token_id,
            banned_token_ids=self.banned_token_ids,
            ignore_eos=bool(self.config.ignore_eos),
            seed=seed,
        )

    # --- weights ---------------------------------------------------------------------------------
    async def load_weights(self, named_tensors: list[tuple[str, torch.Tensor]]) -> int:
        """Copy one bucket of full tensors into the model (names as the FSDP engine exports them)."""
        async with self._lock:
            with torch.no_grad():
                for name, tensor in named_tensors:
                    param = self._params.get(name)
                    if param is None:
                        if name in self._state_keys:  # a tied alias (lm_head of a tied model)
                            continue
                        raise KeyError(f"weight {name!r} sent by the trainer is not a parameter of the rollout model")
                    if param.shape != tensor.shape:
                        raise ValueError(
                            f"weight {name!r}: trainer sent shape {tuple(tensor.shape)}, "
                            f"rollout model has {tuple(param.shape)}"
                        )
                    param.copy_(tensor.to(param.dtype))
                    self._received.add(name)
        return len(named_tensors)

    async def finish_weight_update(self, global_steps: Optional[int]) -> None:
        """Check that every parameter arrived, then serve the new weights as version ``global_steps``."""
        missing = sorted(set(self._params) - self._received)
        self._received = set()
        if missing:
            raise RuntimeError(f"weight update incomplete: {len(missing)} parameter(s) not sent, e.g. {missing[:5]}")
        self.global_steps = global_steps

    async def set_global_steps(self, global_steps: int) -> None:
        self.global_steps = global_steps

    def state_dict_snapshot(self) -> dict[str, torch.Tensor]:
        """A copy of the current weights (for tests and debugging)."""
        return {name: param.detach().clone() for name, param in self._params.items()}

    def num_requests(self) -> int:
        return self._requests

    # --- control calls of RolloutReplica / CheckpointEngineManager: nothing to do on a CPU ----------
    async def wake_up(self, tags: Optional[list[str]] = None) -> None:
        pass

    async def sleep(self) -> None:
        pass

    async def clear_kv_cache(self) -> None:
        pass

    async def release_kv_cache(self) -> None:
        pass

    async def resume_kv_cache(self) -> None:
        pass

    async def abort_all_requests(self, reject_request: bool = False, **_: Any) -> dict[str, Any]:
        # Requests are short and served in order; nothing is partially generated to save.
        return {"aborted_count": 0, "request_ids": []}

    async def resume_generation(self) -> None:
        pass

    async def abort_request(self, request_id: str, **_: Any) -> dict[str, Any]:
        return {"aborted": False, "request_id": request_id, "error": "the hf rollout does not abort requests"}

    async def start_profile(self, **kwargs: Any) -> None:
        pass

    async def stop_profile(self) -> None:
        pass

    def get_rollout_config(self) -> RolloutConfig:
        return self.config


class HFReplica(RolloutReplica):
    """A replica = one :class:`HFRolloutServer` actor on the node of its first worker."""

    async def launch_servers(self) -> None:
        if self.nnodes != 1:
            raise NotImplementedError(
                f"the hf rollout runs one process per replica; got {self.nnodes} nodes per replica "
                "(set actor_rollout_ref.rollout.tensor_model_parallel_size=1)"
            )
        if self.is_reward_model:
            role = "reward"
        elif self.is_teacher_model:
            role = "teacher"
        else:
            role = ""
        name = server_actor_name(self.replica_rank, self.name_suffix, role)
        options: dict[str, Any] = {"name": name, "max_concurrency": self.max_concurrency, "num_cpus": 0}
        if self.workers:
            node_id = await self.workers[0].__ray_call__.remote(lambda _self: ray.get_runtime_context().get_node_id())
            options["scheduling_strategy"] = ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(
                node_id=node_id, soft=False
            )
        server = ray.remote(HFRolloutServer).options(**options).remote(
            config=self.config, model_config=self.model_config, replica_rank=self.replica_rank
        )
        self.servers = [server]
        self._server_handle = server
        # No HTTP endpoint: the address is only a unique key for verl's load balancer.
        self._server_address = f"{name}@{ray.util.get_node_ip_address()}"
        await server.get_rollout_config.remote()  # wait until the model is loaded


class HFServerAdapter(BaseRollout):
    """In-worker half of the hf rollout: pushes the trainer's weights to its server."""

    def __init__(
        self,
        config: RolloutConfig,
        model_config: HFModelConfig,
        device_mesh: Any = None,
        replica_rank: int = -1,
        **_: Any,
    ) -> None:
        super().__init__(config, model_config, device_mesh)
        rank = int(os.environ.get("RANK", "0"))
        rollout_world_size = (
            self.config.tensor_model_parallel_size
            * self.config.data_parallel_size
            * self.config.pipeline_model_parallel_size
        )
        self.replica_rank = rank // rollout_world_size if replica_rank == -1 else replica_rank
        self.rollout_rank = rank % rollout_world_size
        self.is_leader_rank = self.rollout_rank == 0
        self._server: Optional[ray.actor.ActorHandle] = None
        self.sleep_level = 1

    def _server_handle(self) -> Optional[ray.actor.ActorHandle]:
        if not self.is_leader_rank:
            return None
        if self._server is None:  # the server starts after the hybrid engine: look it up lazily
            self._server = ray.get_actor(server_actor_name(self.replica_rank))
        return self._server

    async def resume(self, tags: list[str]) -> None:
        """Weights and KV cache stay in host memory: nothing to resume."""

    async def release(self) -> None:
        """Nothing to release on a CPU."""

    @torch.no_grad()
    async def update_weights(
        self,
        weights: Generator[tuple[str, torch.Tensor], None, None],
        wire_format: str = "named_tensors",
        global_steps: Optional[int] = None,
        peft_config: Any = None,
        **_: Any,
    ) -> None:
        """Stream full tensors to the server in buckets, then switch it to version ``global_steps``."""
        if wire_format != "named_tensors":
            raise NotImplementedError(f"the hf rollout takes full tensors only, got wire_format={wire_format!r}")
        if peft_config is not None:
            raise NotImplementedError("the hf rollout does not serve LoRA adapters; set model.lora.merge=True")
        server = self._server_handle()
        bucket_bytes = int(self.config.checkpoint_engine.update_weights_bucket_megabytes) << 20
        bucket: list[tuple[str, torch.Tensor]] = []
        size = 0
        pending = []
        for name, tensor in weights:  # every rank iterates: full_tensor() is a collective
            if server is None:
                continue
            cpu_tensor = tensor.detach().to("cpu", copy=True).contiguous()
            bucket.append((name, cpu_tensor))
            size += cpu_tensor.numel() * cpu_tensor.element_size()
            if size >= bucket_bytes:
                pending.append(server.load_weights.remote(bucket))
                bucket, size = [], 0
        if server is None:
            return
        if bucket:
            pending.append(server.load_weights.remote(bucket))
        await asyncio.gather(*pending)
        await server.finish_weight_update.remote(global_steps)
