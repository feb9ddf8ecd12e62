#!/usr/bin/env bash
# Fill .whl/ (git-ignored) with what benchmarks/gpu.sh needs on a GPU machine that has
# no network: wheels for Python 3.12 on manylinux x86_64, and the local TinyStories
# sample. Run it where there is a network; carry .whl with the working tree.
#
#   bash benchmarks/gpu_wheels.sh                 # regex, and the data from LLMFS_DATA
#   bash benchmarks/gpu_wheels.sh regex numpy     # these wheels instead
#
# Which wheels. The GPU machine's python3 holds torch (CUDA), triton, transformers,
# tokenizers, safetensors, matplotlib and tqdm. Of the package's own dependencies
# (pyproject.toml) that leaves numpy, regex and datasets: numpy and regex are
# requirements of transformers (and numpy of matplotlib), so they are there too;
# regex (0.8 MB) is carried anyway, in case an interpreter lacks it. datasets is not
# needed: the package reads local TinyStories files (LLMFS_DATA) without it, and it
# would bring pyarrow, pandas and more, past the 64 MiB that can be carried. gpu.sh
# installs a carried wheel only for a module the interpreter cannot import.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${GPU_WHEELS:-.whl}
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
PACKAGES=("$@")
[ ${#PACKAGES[@]} -gt 0 ] || PACKAGES=(regex)
mkdir -p "$DEST"
rm -rf "$DEST/site"  # what gpu.sh installed on another machine, for another Python
"$PY" -m pip download --quiet --only-binary=:all: --no-deps --dest "$DEST" \
    --python-version 3.12 --implementation cp --abi cp312 \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux_2_28_x86_64 "${PACKAGES[@]}"

DATA=${LLMFS_DATA:-../shared/data}
if [ -d "$DATA" ]; then  # the train/valid text files and their provenance
    mkdir -p "$DEST/data"
    find "$DATA" -maxdepth 1 -name '*.txt' \( -iname '*train*' -o -iname '*valid*' \) \
        -exec cp {} "$DEST/data/" \;
    [ -f "$DATA/SOURCES.md" ] && cp "$DATA/SOURCES.md" "$DEST/data/"
else
    echo "gpu_wheels.sh: no data folder $DATA (set LLMFS_DATA): .whl/data not filled" >&2
fi
echo "gpu_wheels.sh: $DEST holds"
(cd "$DEST" && find . -type f -not -path './site/*' | sort | xargs ls -l | awk '{print "  " $5, $9}')
echo "  in all: $(du -sh --exclude=site "$DEST" | cut -f1) (the carry limit is 64 MiB)"
