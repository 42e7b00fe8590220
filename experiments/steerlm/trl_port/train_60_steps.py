import json
import time

from steerlab.methods.steerlm import train_sft
from steerlab.models.loading import load_model

lm=load_model('smollm2-135m')
t=time.time()
art=train_sft(lm,'/work/main/experiments/steerlm/humor/data/mix-h.v2t.jsonl',n_steps=60,progress=False)
art.save('/tmp/sftcmp/new',overwrite=True)
json.dump({'s':time.time()-t,'history':art.meta['training']['loss_history']},open('/tmp/sftcmp/new.json','w'))
