#!/usr/bin/env bash
# Serves the paper's six open proposers with vLLM, one OpenAI-compatible server per model, for
#   moa-bench endpoints=vllm_paper catalogue=paper_vllm moa=moa benchmark=alpaca_eval ...
# (conf/endpoints/vllm_paper.yaml reads each server's URL from VLLM_<MODEL>_URL, default
# http://127.0.0.1:<port>/v1 with the ports below; GPT-4o, for moa_gpt4o and the judges, stays
# on the `openai` endpoint.)
#
# Usage: scripts/serve_vllm.sh MODEL...   (MODEL: qwen110b qwen72b wizardlm llama3 mixtral dbrx,
#        or `all`). The models given share this node's GPUs (GPUS, default 0-7), in order.
#
# GPUs assumed: 80 GB each (A100/H100 80GB). Tensor-parallel sizes (bf16 weights | FP8=1):
#   qwen110b   Qwen/Qwen1.5-110B-Chat                 ~222 GB   TP 8 | TP 4
#   qwen72b    Qwen/Qwen1.5-72B-Chat                  ~145 GB   TP 4 | TP 2  (no GQA: its KV
#              cache is 2.6 MB a token, so TP 4 holds few long MoA prompts; TP 8 for throughput)
#   wizardlm   microsoft/WizardLM-2-8x22B (MoE, 141B) ~282 GB   TP 8 | TP 4
#   llama3     meta-llama/Meta-Llama-3-70B-Instruct   ~141 GB   TP 4 | TP 2
#   mixtral    mistralai/Mixtral-8x22B-Instruct-v0.1  ~282 GB   TP 8 | TP 4
#   dbrx       databricks/dbrx-instruct (MoE, 132B)   ~264 GB   TP 8 | TP 4
# bf16: 40 GPUs, five 8-GPU nodes, e.g. [qwen110b] [qwen72b llama3] [wizardlm] [mixtral] [dbrx].
# FP8=1 (H100: weights quantized to fp8 at load, fp8 KV cache): 20 GPUs, e.g.
# [qwen110b qwen72b llama3] [wizardlm mixtral] [dbrx] with 8 GPUs a node.
#
# Environment: GPUS (comma-separated ids), HOST (default 0.0.0.0), FP8=1, EXTRA_ARGS (passed to
# every `vllm serve`), WIZARDLM_REPO (Microsoft withdrew microsoft/WizardLM-2-8x22B after release:
# point this at a copy you trust; it is still served under the name the catalogue uses),
# HF_TOKEN (Llama 3 and DBRX are gated), DRY_RUN=1 (print the commands, start nothing),
# REPLICAS=N (default 1: N servers of each model given, replica i on port <port> + 10 i, each on
# its own GPUs), URL_HOST (the host name the printed endpoint config uses, default this one's).
# With REPLICAS > 1 it prints the endpoint config of the model's replicas (base_urls, as in
# conf/endpoints/vllm_replicas.yaml); replicas on several nodes: join the nodes' base_urls.
# Each server is served under the model id the catalogue sends, and holds its context window
# (Llama 3: 8k, so long MoA prompts are fitted by the harness's context policy). Ctrl-C stops all.
set -euo pipefail

# name | repository | served name | TP bf16 | TP fp8 | port | max context
MODELS="
qwen110b|Qwen/Qwen1.5-110B-Chat|Qwen/Qwen1.5-110B-Chat|8|4|8001|32768
qwen72b|Qwen/Qwen1.5-72B-Chat|Qwen/Qwen1.5-72B-Chat|4|2|8002|32768
wizardlm|${WIZARDLM_REPO:-microsoft/WizardLM-2-8x22B}|microsoft/WizardLM-2-8x22B|8|4|8003|65536
llama3|meta-llama/Meta-Llama-3-70B-Instruct|meta-llama/Meta-Llama-3-70B-Instruct|4|2|8004|8192
mixtral|mistralai/Mixtral-8x22B-Instruct-v0.1|mistralai/Mixtral-8x22B-Instruct-v0.1|8|4|8005|65536
dbrx|databricks/dbrx-instruct|databricks/dbrx-instruct|8|4|8006|32768
"

usage() {
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

[ $# -ge 1 ] || usage
wanted=("$@")
if [ "${wanted[0]}" = all ]; then
    wanted=(qwen110b qwen72b wizardlm llama3 mixtral dbrx)
fi

IFS=, read -r -a gpus <<< "${GPUS:-0,1,2,3,4,5,6,7}"
replicas=${REPLICAS:-1}
url_host=${URL_HOST:-$(hostname -f 2>/dev/null || hostname)}
next_gpu=0
pids=()
config=""
trap 'if [ ${#pids[@]} -gt 0 ]; then kill "${pids[@]}" 2>/dev/null || true; fi' EXIT INT TERM

for name in "${wanted[@]}"; do
    line=$(printf '%s\n' "$MODELS" | grep "^${name}|" || true)
    [ -n "$line" ] || { echo "serve_vllm: unknown model '$name'" >&2; usage; }
    IFS='|' read -r _ repo served tp tp_fp8 first_port max_len <<< "$line"
    quant=()
    if [ "${FP8:-0}" = 1 ]; then
        tp=$tp_fp8
        quant=(--quantization fp8 --kv-cache-dtype fp8)
    fi
    urls=""
    for ((replica = 0; replica < replicas; replica++)); do
        port=$((first_port + 10 * replica))
        if [ $((next_gpu + tp)) -gt ${#gpus[@]} ]; then
            echo "serve_vllm: $name needs $tp GPUs, ${#gpus[@]} - $next_gpu left: serve it on another node" >&2
            exit 1
        fi
        devices=$(IFS=,; echo "${gpus[*]:next_gpu:tp}")
        next_gpu=$((next_gpu + tp))
        # shellcheck disable=SC2206  # EXTRA_ARGS is split on purpose
        cmd=(vllm serve "$repo" --served-model-name "$served"
             --host "${HOST:-0.0.0.0}" --port "$port"
             --tensor-parallel-size "$tp" --max-model-len "$max_len"
             --gpu-memory-utilization 0.92 ${quant[@]+"${quant[@]}"} ${EXTRA_ARGS:-})
        echo "CUDA_VISIBLE_DEVICES=$devices ${cmd[*]}"
        if [ "${DRY_RUN:-0}" != 1 ]; then
            CUDA_VISIBLE_DEVICES=$devices "${cmd[@]}" &
            pids+=($!)
        fi
        urls+="    - http://${url_host}:${port}/v1"$'\n'
    done
    config+="vllm_${name}:"$'\n'"  provider: openai"$'\n'"  base_urls:"$'\n'"${urls}"
    config+="  replica_max_concurrency: 128"$'\n'"  timeout_s: 1800"$'\n'"  bills: false"$'\n'
done

if [ "$replicas" -gt 1 ]; then
    echo "# endpoint config of these replicas (put it in conf/endpoints/, after 'defaults: [default, _self_]'):"
    printf '%s' "$config"
fi

if [ "${DRY_RUN:-0}" != 1 ]; then
    wait
fi
