# alloc_heavy.py - an allocation-heavy Python workload for the preload tests
# (run with PYTHONMALLOC=malloc so every object goes through malloc).
import json
import random

random.seed(1)
rows = [{"k": i, "v": str(random.random()) * 3, "l": list(range(i % 50))} for i in range(60000)]
text = json.dumps(rows)
back = json.loads(text)
words = {}
for r in back:
    words.setdefault(r["v"][:4], []).append(r["k"])
print(len(text), sum(len(r["l"]) for r in back), len(words), sorted(words)[:3])
