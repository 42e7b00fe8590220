"""Does SmolLM2 read content from the soft-prompt slots at all? The loss on two continuations with
the slots holding random vectors (at the token-embedding norm, and 10x), zeros, or the token
embeddings of a matching vs swapped topical prompt.

    python experiments/dglm/soft_read_probe.py      # seconds

Seen: random 4.68, random x10 4.86, zeros 6.00, matching topic 4.38 vs swapped 4.57.
"""
import torch
import torch.nn.functional as F

from steerlab.methods.dglm.decoder import batch_inputs, embed_scale
from steerlab.models.loading import load_model

lm = load_model("smollm2-135m")
tok = lm.tokenizer
conts = ["the government announced a new plan to reduce taxes for small businesses next year",
         "she scored twice in the second half as the team won the cup final"]
cont = [tok(c, add_special_tokens=False)["input_ids"] for c in conts]
sc = embed_scale(lm); print("scale", sc)
table = lm.model.get_input_embeddings().weight
def loss(soft, pre=None):
    pre = pre or [[] for _ in cont]
    e, m, l = batch_inputs(lm, soft, pre, cont)
    with torch.no_grad():
        lg = lm.model(inputs_embeds=e, attention_mask=m).logits
    return float(F.cross_entropy(lg[:, :-1].reshape(-1, lg.shape[-1]), l[:, 1:].reshape(-1), ignore_index=-100))
g = torch.Generator().manual_seed(0)
r = torch.randn(2, 8, 576, generator=g); r = r / r.norm(dim=-1, keepdim=True) * sc
print("random", loss(r), "random x10", loss(r * 10), "zeros", loss(torch.zeros(2, 8, 576)))
# real token embeddings of a relevant prompt vs irrelevant
rel = [tok("Politics news: taxes", add_special_tokens=False)["input_ids"], tok("Sports news: football", add_special_tokens=False)["input_ids"]]
k = min(len(x) for x in rel)
soft_rel = torch.stack([table[torch.tensor(x[:k])] for x in rel]).detach()
print("relevant tokens", loss(soft_rel), "swapped", loss(soft_rel.flip(0)))
