#!/usr/bin/env bash
# Set up what `make book` and `make test` need. Called by the Makefile:
#   setup_env.sh python   the virtual environment (VENV, default .venv) with EXTRAS
#   setup_env.sh tex      the Debian TeX packages for the PDF (installed when root)
set -euo pipefail

TEX_PACKAGES="latexmk texlive-xetex texlive-latex-extra texlive-fonts-recommended \
fonts-freefont-otf poppler-utils chromium"  # chromium: the test that opens the HTML

python_env() {
    local venv=${VENV:-.venv} extras=${EXTRAS:-book,test,kernels,distributed,eval}
    local python=${PYTHON:-python3}
    if [ ! -x "$venv/bin/python" ]; then
        echo "setup: creating $venv with $($python --version)"
        "$python" -m venv "$venv"
    fi
    local pip="$venv/bin/python -m pip"
    $pip install -q --upgrade pip
    # torch first. TORCH overrides the requirement; by default a build that pip can take
    # from a local wheel directory (a CPU build on these machines) wins over the index,
    # whose default build on Linux brings several GB of CUDA libraries.
    if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
        local spec=${TORCH:-}
        if [ -z "$spec" ]; then
            if $pip install --dry-run --no-index --no-deps "torch>=2.5" >/dev/null 2>&1
            then spec=$($pip install --dry-run --no-index --no-deps "torch>=2.5" 2>/dev/null \
                        | sed -n 's/^Would install torch-\([0-9.]*\).*/torch==\1/p')
            fi
            spec=${spec:-torch>=2.5}
        fi
        echo "setup: installing $spec"
        $pip install -q "$spec"
    fi
    # Every later install must keep that torch (transformers, deepspeed, lm-eval ask too).
    "$venv/bin/python" -c "import torch; print('torch==' + torch.__version__.split('+')[0])" \
        > "$venv/constraints.txt"
    echo "setup: installing llm-from-scratch[$extras] (torch kept at $(cat "$venv/constraints.txt"))"
    $pip install -q -c "$venv/constraints.txt" -e ".[$extras]"
}

tex_env() {
    if command -v xelatex >/dev/null && command -v latexmk >/dev/null \
        && command -v pdftoppm >/dev/null && command -v chromium >/dev/null; then
        return 0
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "setup: installing TeX for the PDF and Chromium for the HTML check: $TEX_PACKAGES"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            $TEX_PACKAGES >/dev/null
    else
        echo "setup: the PDF needs xelatex and latexmk. On Debian/Ubuntu run:" >&2
        echo "  sudo apt-get install $TEX_PACKAGES" >&2
        echo "(make html builds the HTML book without them.)" >&2
        exit 1
    fi
}

case "${1:-}" in
    python) python_env ;;
    tex) tex_env ;;
    *) echo "usage: $0 python|tex" >&2; exit 2 ;;
esac
