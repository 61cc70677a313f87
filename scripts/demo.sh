#!/usr/bin/env bash
# The main job end to end on a small real example: import the shipped knowledge graph,
# look entities up, check the rule file against it, train the knowledge-biased MoE
# classifier on the low-resource BBC News split, evaluate it and classify a few texts.
# Usage: bash scripts/demo.sh [OUTPUT_DIR]   (run by `make demo`, inside .venv)
set -euo pipefail
out=${1:-demo}
bin=.venv/bin
mkdir -p "$out"

echo "== 1. Compile the shipped FB15k-237 graph into a KB"
"$bin/sparse-expert" kb import knowledge/fb15k237.nt.gz --output "$out/kb"
"$bin/sparse-expert" kb lookup "$out/kb" "Tony Blair" -n 1
"$bin/sparse-expert" kb lookup "$out/kb" "Chelsea" -n 3

echo "== 2. Check the news rule file against the KB"
"$bin/sparse-expert" rules check knowledge/rules/news.jsonl --kb "$out/kb"

echo "== 3. The fixed BBC News split as .spacy files"
"$bin/sparse-expert" data bbc "$out/corpus"

echo "== 4. Train on train_small (100 documents) with the KB and the rules"
"$bin/python" -m spacy train configs/bbc_news.cfg --output "$out/model" \
    --paths.train "$out/corpus/train_small.spacy" --paths.dev "$out/corpus/dev.spacy" \
    --paths.kb "$out/kb" --paths.rules knowledge/rules/news.jsonl \
    --training.max_steps "${DEMO_STEPS:-200}" --training.eval_frequency 50

echo "== 5. Evaluate on the held-out test split"
"$bin/python" -m spacy evaluate "$out/model/model-best" "$out/corpus/test.spacy"

echo "== 6. Classify"
"$bin/python" scripts/classify.py "$out/model/model-best" \
    "Chelsea beat Arsenal 2-1 at Stamford Bridge to go top of the Premier League." \
    "Tony Blair faces a Commons revolt over the plans for university tuition fees." \
    "Shares in Microsoft rose after it reported record quarterly profits." \
    "The film took 40 million dollars at the US box office in its first weekend."
