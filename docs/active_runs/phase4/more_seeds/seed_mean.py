import json, glob, sys
from openmindspore.active.state import SeedState
from pathlib import Path
seeds=[int(s) for s in sys.argv[1:]]
m,r,full={},{},{}
for s in seeds:
    st=SeedState.load(Path(f"/tmp/s12/w{s}/mnist-margin-b20"), s)  # W=/tmp/s12/wS as in the commands
    full[s]=st.full_pool_accuracy
    m[s]={row["labels"]:row["accuracy"] for row in st.rows}
    r[s]={int(k):v for k,v in json.load(open(f"/tmp/s12/w{s}/mnist-random-at/seed_{s}_b20.json")).items()}
bar=0.95*sum(full.values())/len(full)
print("full",full,"bar(mean full)",round(bar,4))
def first(curves):
    counts=sorted(set.intersection(*[set(c) for c in curves.values()]))
    mean={n:sum(c[n] for c in curves.values())/len(curves) for n in counts}
    return next((n for n in counts if mean[n]>=bar-1e-12),None), {n:round(v,4) for n,v in mean.items()}
fm,mm=first(m); fr,mr=first(r)
print("margin first",fm,{k:v for k,v in mm.items() if 140<=k<=300})
print("random first",fr,{k:v for k,v in mr.items() if k>=200})
print("ratio", fr/fm if fm and fr else None)
for s in seeds:
    b=0.95*full[s]
    a=next((n for n in sorted(m[s]) if m[s][n]>=b-1e-12),None); c=next((n for n in sorted(r[s]) if r[s][n]>=b-1e-12 and n>=(a or 0)),None)
    print(s,"margin",a,"random first>=margin fig",c, "random fits", {k:v for k,v in sorted(r[s].items()) if k>=160})
