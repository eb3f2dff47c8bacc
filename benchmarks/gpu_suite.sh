#!/usr/bin/env bash
# One-shot GPU suite (under 10 minutes on one H100/H200): T5 v1.1 large, bf16.
#   bash benchmarks/gpu_suite.sh             # on the GPU machine, from the repository root
#   bash benchmarks/gpu_suite.sh --dry_run   # CPU, tiny shapes: checks the script end to end (a test runs this)
# Prints, in order:
#   1. the SFT train step: tokens/s and MFU against the chip's bf16 dense peak (benchmarks/bench_train_step.py);
#   2. KV-cache decode: new tokens/s beside the HBM-bandwidth bound (benchmarks/bench_decode.py);
#   3. one MTPO iteration at the paper's batch, 16 contexts x 2 conversations x 10 turns, by phase
#      (benchmarks/bench_rl_phases.py);
#   4. the ahead-of-time prediction for the same SFT and MTPO steps compiled for this GPU (tools/aot_compile.py
#      --native): per-device memory, FLOPs and the roofline step time, to set beside 1 and 3.
# Compiler predictions (4) and measurements (1-3) are labelled as such in docs/scaling.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
if [[ "${1:-}" == "--dry_run" ]]; then
  export JAX_PLATFORMS=cpu
  MODEL=models/t5_tiny.gin; MESH=meshes/cpu.gin; EXTRA=(--gin "T5Config.vocab_size = 3072")
  SFT=(--batch=8 --input_length=64 --target_length=16 --steps=2 --warmup=1)
  DEC=(--batch=4 --input_length=32 --new_tokens=8 --repeats=1 --skip_recompute --hbm_gbps=3350)
  RL=(--iterations=2 --contexts=2 --max_agent_turns=2 --input_length=64 --max_turn_tokens=8 --microbatch_rows=0)
  AOT=(--gin.ConversationSettings.input_length=64 --gin.ConversationSettings.max_turn_tokens=8
       --gin.ConversationSettings.max_agent_turns=2 --gin.LoopSettings.batch_size=2
       --gin.ActorCriticHParams.microbatch_rows=0 "--gin.train_sft.task_feature_lengths={'inputs': 64, 'targets': 16}"
       --gin.T5Config.vocab_size=3072)
else
  MODEL=models/t5_1_1_large.gin; MESH=meshes/gpu_1.gin; EXTRA=(--gin "T5Config.vocab_size = 32128")
  SFT=(--batch=32 --input_length=512 --target_length=128 --steps=10 --warmup=2)
  DEC=(--batch=32 --input_length=512 --new_tokens=64 --repeats=3 --skip_recompute)
  RL=(--iterations=2 --contexts=16 --max_agent_turns=10 --input_length=512 --max_turn_tokens=64 --microbatch_rows=64)
  AOT=("--gin.train_sft.task_feature_lengths={'inputs': 512, 'targets': 128}" --gin.LoopSettings.batch_size=16)
fi
echo "== 1. SFT train step (measured) =="
$PY benchmarks/bench_train_step.py --gin_model=$MODEL --mesh=$MESH "${EXTRA[@]}" "${SFT[@]}"
echo "== 2. KV-cache decode (measured) =="
$PY benchmarks/bench_decode.py --gin_model=gin/$MODEL "${DEC[@]}"
echo "== 3. one MTPO iteration at the paper's batch (measured) =="
$PY benchmarks/bench_rl_phases.py --algorithm=mtpo --gin_model=$MODEL --mesh=$MESH "${EXTRA[@]}" "${RL[@]}"
echo "== 4. ahead-of-time prediction for the same steps (compiler) =="
$PY tools/aot_compile.py --native --slice=h100x1 --gin_file=runs/mtpo.gin --gin_file=$MODEL --gin_file=$MESH \
  --steps=sft,actor_critic --gin.MODEL_DIR="'unused'" "${AOT[@]}"
