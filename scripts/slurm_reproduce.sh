#!/usr/bin/env bash
# fundus_mtl on a SLURM cluster: one task per node, torchrun on each node starts one process per GPU, and the nodes
# meet through torchrun's c10d rendezvous on the first node. Submit from the project's root:
#
#   sbatch --nodes=2 --gpus-per-node=4 scripts/slurm_reproduce.sh paper-eyeq runs/paper-eyeq --data-root /data/eyeq
#
# The data and teacher stages (and every stage that does not train) run once, here, before the training stages;
# the training stages run as nodes x GPUs processes (`fundus-mtl stage` on each), rank 0 writing the run. Every
# node must see the run directory and the data at the same paths (a shared file system), and should keep the
# uint8 image cache on fast local or shared storage: see README "Scaling out".
#SBATCH --job-name=fundus-mtl
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=16
#SBATCH --time=24:00:00
set -euo pipefail
PRESET=${1:?usage: sbatch scripts/slurm_reproduce.sh PRESET RUN_DIR [reproduce options]}; RUN=${2:?run directory}; shift 2
source .venv/bin/activate
GPUS=${SLURM_GPUS_ON_NODE:-$(nvidia-smi -L | wc -l)}
HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
# 1. everything but the training stages, once, on the first node (the config and the data cache for all)
fundus-mtl reproduce --preset "$PRESET" --out "$RUN" --stages data "$@"
# 2. each training stage on every GPU of every node
for stage in teacher student; do
  srun --ntasks-per-node=1 python -m torch.distributed.run --nnodes="$SLURM_NNODES" --nproc-per-node="$GPUS" \
       --rdzv-backend=c10d --rdzv-endpoint="$HEAD:29500" --rdzv-id="$SLURM_JOB_ID" \
       --no-python fundus-mtl stage "$stage" "$RUN"
done
# 3. the ledger and the rest of the pipeline (evaluation, figures, report) on one node: the training stages are
#    recorded as finished by re-running reproduce, which finds their outputs and skips nothing it must redo
fundus-mtl reproduce --preset "$PRESET" --out "$RUN" "$@"
