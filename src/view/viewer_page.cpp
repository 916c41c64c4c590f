// The viewer's page: one self-contained HTML file (inline CSS and JavaScript, no network).
// view_html.cpp puts the executable's JSON where /*LOOM_DATA*/ stands. The script lays the
// graph out itself (layers by longest path from the sources, order by barycentre sweeps),
// draws it as SVG with pan and zoom, and shows details, pass differences, the arena and the
// profile.
#include "view/viewer_page.h"

namespace loom::view {

const char* const kViewerPage = R"LOOMPAGE(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>/*LOOM_TITLE*/</title>
<style>
*{box-sizing:border-box}body{margin:0;font:13px system-ui,sans-serif;color:#222;display:flex;flex-direction:column;height:100vh}
header{padding:6px 10px;background:#2b3440;color:#eee;display:flex;gap:10px;align-items:center;flex-wrap:wrap}
header b{font-size:15px}header select,header input,header button{font:inherit}
#note{color:#ffd479}#main{flex:1;display:flex;min-height:0}#canvas{flex:1;position:relative;overflow:hidden;background:#fafafa}
svg{width:100%;height:100%;display:block;user-select:none}#side{width:360px;overflow:auto;border-left:1px solid #ccc;padding:8px;background:#fff}
.tabs button{margin-right:4px}.tabs button.on{font-weight:bold}
.node rect{fill:#fff;stroke:#888;stroke-width:1;rx:4}.node text{font-size:11px;pointer-events:none}
.node.source rect{fill:#eef3fb}.node.state rect{fill:#f3eefb}.node.group rect{fill:#e8e8e8;stroke-dasharray:4 2}
.node.added rect{stroke:#1a9c3a;stroke-width:3}.node.changed rect{stroke:#e08a00;stroke-width:3}
.node.match rect{fill:#fff3a0}.node.sel rect{stroke:#1565c0;stroke-width:4}.node.nokernel{opacity:.6}
.edge{fill:none;stroke:#999;stroke-width:1}table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #eee;padding:2px 4px;text-align:left;vertical-align:top;font-size:12px}
.k{color:#666}.mono{font-family:ui-monospace,monospace;font-size:12px;word-break:break-all}.removed{color:#b00020}
.legend span{display:inline-block;padding:0 4px;margin-right:4px;border:2px solid}
a{color:#1565c0;cursor:pointer}
</style></head><body>
<header><b>Loom graph</b><span id="device"></span><span id="node-count"></span>
<label>stage <select id="stage"></select></label>
<input id="search" placeholder="search name or op" size="18"><span id="matches"></span>
<label><input type="checkbox" id="collapse"> collapse repeated layers</label>
<button id="fit">fit</button>
<span class="tabs"><button id="tab-graph" class="on">graph</button><button id="tab-memory">memory</button></span>
<span id="note"></span></header>
<div id="main"><div id="canvas"><svg id="svg"><g id="viewport"></g></svg></div>
<div id="side"><div class="legend"><span style="border-color:#1a9c3a">added</span><span style="border-color:#e08a00">changed / fused</span><span style="border-color:#1565c0">selected</span></div>
<div id="details"><p class="k">Click a node for its op, attributes, types, kernel and time.</p></div>
<div id="diff"></div><div id="profile"></div></div></div>
<script type="application/json" id="loom-data">/*LOOM_DATA*/</script>
<script>
"use strict";
const data=JSON.parse(document.getElementById('loom-data').textContent);
const NS='http://www.w3.org/2000/svg',W=170,H=38,GX=24,GY=46;
const $=id=>document.getElementById(id);
const esc=s=>String(s).replace(/[&<>"]/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
let stageIndex=data.stages.length-1,selected=null,view={x:20,y:20,k:1},mode='graph',expanded=null,layout=null;
const steps=(data.plan&&data.plan.steps)||{};
const prof={};for(const p of data.profile)prof[p.node]=p;
$('device').textContent='device '+data.device+' · Loom '+data.loom_version+(data.plan&&Object.keys(data.plan.binding).length?' · plan for '+Object.entries(data.plan.binding).map(([k,v])=>k+'='+v).join(', '):'');
$('note').textContent=data.note||'';
data.stages.forEach((s,i)=>{const o=document.createElement('option');o.value=i;o.textContent=(i?i+'. ':'')+s.name;$('stage').appendChild(o);});
$('stage').value=stageIndex;

// Layer number of each node for collapsing: a variable named with a number (blk.3.attn_q,
// cache.k.3) starts a layer; other nodes take the largest layer among their inputs.
function layerNumbers(nodes){const num={};for(const n of nodes){let L=-1;if(n.role==='variable'){const m=n.name.match(/(?:^|[._])(\d+)(?:[._]|$)/);if(m)L=+m[1];}
for(const [i] of n.inputs)if(num[i]!==undefined)L=Math.max(L,num[i]);num[n.id]=L;}return num;}

// Nodes and edges to draw: the stage's graph, or with each layer but one folded into a box.
function visibleGraph(){const g=data.stages[stageIndex].graph,nodes=g.nodes;let items=nodes.map(n=>({key:'n'+n.id,node:n,ins:n.inputs.map(([i])=>'n'+i)}));
if($('collapse').checked){const num=layerNumbers(nodes);const layers=[...new Set(Object.values(num).filter(x=>x>=0))].sort((a,b)=>a-b);
if(layers.length>=3){const keep=expanded===null?layers[0]:expanded;const groupOf=n=>num[n.id]>=0&&num[n.id]!==keep?'g'+num[n.id]:null;const groups={},out=[];
for(const it of items){const gk=groupOf(it.node);if(!gk){out.push(it);continue;}
if(!groups[gk]){groups[gk]={key:gk,group:num[it.node.id],count:0,ins:[],members:[]};out.push(groups[gk]);}
const gr=groups[gk];gr.count++;gr.members.push(it.node);gr.ins.push(...it.ins);}
const rep={};for(const it of items){const gk=groupOf(it.node);rep[it.key]=gk||it.key;}
for(const it of out){it.ins=[...new Set(it.ins.map(k=>rep[k]))].filter(k=>k!==it.key);}items=out;}}
return items;}

// Layers by longest path from the sources (sources sit just above their first user), then a
// few barycentre sweeps to reduce crossings.
function computeLayout(items){const byKey={};items.forEach((it,i)=>{byKey[it.key]=it;it.order=i;});const users={};
for(const it of items)for(const k of it.ins)(users[k]=users[k]||[]).push(it);
// Items are in program order, but a folded layer may take inputs from nodes after its first
// member (and folding can make cycles): inputs not placed yet are ignored.
for(const it of items)it.layer=undefined;
for(const it of items){let L=0;for(const k of it.ins){const a=byKey[k];if(a&&a!==it&&a.layer!==undefined)L=Math.max(L,a.layer+1);}it.layer=L;}
for(let i=items.length-1;i>=0;i--){const it=items[i];if(it.ins.length===0&&users[it.key]){it.layer=Math.max(0,Math.min(...users[it.key].map(u=>u.layer))-1);}}
const rows=[];for(const it of items)(rows[it.layer]=rows[it.layer]||[]).push(it);for(let i=0;i<rows.length;i++)rows[i]=rows[i]||[];
const place=()=>rows.forEach(r=>r.forEach((it,i)=>it.pos=i));place();
for(let sweep=0;sweep<4;sweep++){const down=sweep%2===0;const order=down?rows:[...rows].reverse();
for(const r of order){for(const it of r){const nb=down?it.ins.map(k=>byKey[k]).filter(Boolean):(users[it.key]||[]);it.bc=nb.length?nb.reduce((s,n)=>s+n.pos,0)/nb.length:it.pos;}
r.sort((a,b)=>a.bc-b.bc);r.forEach((it,i)=>it.pos=i);}}
const widest=Math.max(1,...rows.map(r=>r.length));
for(const r of rows){const off=(widest-r.length)*(W+GX)/2;r.forEach((it,i)=>{it.x=off+i*(W+GX);it.y=it.layer*(H+GY);});}
return {items,byKey,width:widest*(W+GX),height:rows.length*(H+GY)};}

function diffOf(){if(stageIndex===0)return null;const prev=data.stages[stageIndex-1].graph.nodes,cur=data.stages[stageIndex].graph.nodes;const pm={};for(const n of prev)pm[n.id]=n;const cm={};for(const n of cur)cm[n.id]=n;
const status={};for(const n of cur){const p=pm[n.id];if(!p)status[n.id]='added';else if(p.op!==n.op||JSON.stringify(p.inputs)!==JSON.stringify(n.inputs)||JSON.stringify(p.attrs)!==JSON.stringify(n.attrs))status[n.id]='changed';}
const removed=prev.filter(n=>!cm[n.id]);return {status,removed};}

function label(n){let s=n.op;if(n.name)s+=' '+n.name;return s.length>26?s.slice(0,25)+'…':s;}
function sub(n){const st=steps[n.id];let s='%'+n.id+' '+(n.types[0]||'');if(data.stages[stageIndex].lowered&&st)s=st.kernel+(st.tactic?'#'+st.tactic:'');if(prof[n.id])s+=' '+prof[n.id].ms.toFixed(3)+' ms';return s.length>30?s.slice(0,29)+'…':s;}

function draw(){const vp=$('viewport');vp.textContent='';if(mode==='memory'){drawMemory(vp);return;}
const items=visibleGraph();layout=computeLayout(items);const diff=diffOf();const q=$('search').value.trim().toLowerCase();let matches=0;
const frag=document.createDocumentFragment();
for(const it of items)for(const k of it.ins){const a=layout.byKey[k];if(!a)continue;const p=document.createElementNS(NS,'path');const x1=a.x+W/2,y1=a.y+H,x2=it.x+W/2,y2=it.y;
p.setAttribute('d','M'+x1+','+y1+' C'+x1+','+(y1+GY/2)+' '+x2+','+(y2-GY/2)+' '+x2+','+y2);p.setAttribute('class','edge');frag.appendChild(p);}
const lowered=data.stages[stageIndex].lowered;
for(const it of items){const g=document.createElementNS(NS,'g');let cls='node';const n=it.node;
if(n){if(['placeholder','constant','variable'].includes(n.role))cls+=' source';if(['assign','inplace_update','read'].includes(n.role))cls+=' state';
if(diff&&diff.status[n.id])cls+=' '+diff.status[n.id];if(lowered&&!steps[n.id])cls+=' nokernel';
if(q&&((n.name||'').toLowerCase().includes(q)||n.op.toLowerCase().includes(q)||('%'+n.id)===q)){cls+=' match';matches++;}
if(selected===n.id)cls+=' sel';g.dataset.id=n.id;}else{cls+=' group';g.dataset.group=it.group;
if(q&&it.members.some(m=>(m.name||'').toLowerCase().includes(q)||m.op.toLowerCase().includes(q))){cls+=' match';matches++;}}
g.setAttribute('class',cls);g.setAttribute('transform','translate('+it.x+','+it.y+')');
const r=document.createElementNS(NS,'rect');r.setAttribute('width',W);r.setAttribute('height',H);g.appendChild(r);
const t1=document.createElementNS(NS,'text');t1.setAttribute('x',6);t1.setAttribute('y',15);t1.textContent=n?label(n):'layer '+it.group+' ('+it.count+' nodes, click to open)';g.appendChild(t1);
const t2=document.createElementNS(NS,'text');t2.setAttribute('x',6);t2.setAttribute('y',30);t2.setAttribute('fill','#666');t2.textContent=n?sub(n):'';g.appendChild(t2);
frag.appendChild(g);}
vp.appendChild(frag);$('matches').textContent=q?matches+' found':'';
$('node-count').textContent=data.stages[stageIndex].graph.nodes.length+' nodes';
showDiff(diff);applyView();}

function showDiff(diff){const d=$('diff');if(!diff){d.innerHTML='';return;}const st=data.stages[stageIndex];const s=diff.status;
const added=Object.keys(s).filter(k=>s[k]==='added').length,changed=Object.keys(s).filter(k=>s[k]==='changed').length;
d.innerHTML='<h4>'+esc(st.name)+' against '+esc(data.stages[stageIndex-1].name)+'</h4><p>'+added+' added, '+changed+' changed or fused, '+diff.removed.length+' removed</p>'+
(diff.removed.length?'<div class="removed mono">removed: '+diff.removed.slice(0,200).map(n=>'%'+n.id+' '+esc(n.op)+(n.name?' '+esc(n.name):'')).join(', ')+'</div>':'');}

function showDetails(id){const n=data.stages[stageIndex].graph.nodes.find(m=>m.id===id);if(!n)return;const st=steps[id];let h='<h3 id="detail-op">'+esc(n.op)+' <span class="k">%'+n.id+'</span></h3><table>';
const row=(k,v)=>h+='<tr><td class="k">'+esc(k)+'</td><td class="mono">'+v+'</td></tr>';
row('role',esc(n.role));if(n.name)row('name',esc(n.name));
for(const [k,v] of Object.entries(n.attrs))row('attr '+k,esc(v));
n.inputs.forEach(([i,o],j)=>{const src=data.stages[stageIndex].graph.nodes.find(m=>m.id===i);row('input '+j,'<a data-go="'+i+'">%'+i+(o?':'+o:'')+'</a> '+(src?esc(src.op)+' '+esc(src.types[o]||''):''));});
n.types.forEach((t,j)=>row('output '+j,esc(t)));
if(st){st.types.forEach((t,j)=>row('planned '+j,esc(t)));row('kernel',esc(st.kernel)+(st.tactic?'#'+esc(st.tactic):''));if(st.tried>0)row('timed',st.ms.toPrecision(3)+' ms ('+st.tried+' tried)');if(st.workspace)row('workspace',st.workspace+' B');}
if(prof[id])row('profiled',prof[id].ms.toFixed(4)+' ms');
h+='</table>';$('details').innerHTML=h;}

function showProfile(){const p=$('profile');if(!data.profile.length){p.innerHTML='<p class="k">No profile (loom view --profile, exe.profile()).</p>';return;}
const total=data.profile.reduce((s,t)=>s+t.ms,0);const top=[...data.profile].sort((a,b)=>b.ms-a.ms).slice(0,25);
p.innerHTML='<h4>Top nodes by time (total '+total.toFixed(3)+' ms)</h4><table id="top-nodes">'+top.map(t=>'<tr><td><a data-go="'+t.node+'">%'+t.node+'</a> '+esc(t.op)+'</td><td class="mono">'+esc(t.kernel)+'</td><td>'+t.ms.toFixed(3)+' ms</td><td>'+(100*t.ms/total).toFixed(1)+'%</td></tr>').join('')+'</table>';}

function drawMemory(vp){const plan=data.plan;$('node-count').textContent=data.stages[stageIndex].graph.nodes.length+' nodes';if(!plan||!plan.buffers.length){const t=document.createElementNS(NS,'text');t.setAttribute('y',20);t.textContent='No plan yet: the graph has symbols and was not run.';vp.appendChild(t);applyView();return;}
const last=Math.max(1,...plan.buffers.map(b=>b.last+1)),arena=Math.max(1,plan.arena_bytes),PW=900,PH=600;
const axis=document.createElementNS(NS,'text');axis.setAttribute('y',-6);axis.textContent='arena '+plan.arena_bytes+' B: offset (down) × lifetime in steps (across); '+plan.buffers.length+' buffers';vp.appendChild(axis);
const frame=document.createElementNS(NS,'rect');frame.setAttribute('width',PW);frame.setAttribute('height',PH);frame.setAttribute('fill','none');frame.setAttribute('stroke','#444');vp.appendChild(frame);
for(const b of plan.buffers){const r=document.createElementNS(NS,'rect');const x=PW*b.first/last,w=Math.max(1,PW*(b.last+1-b.first)/last),y=PH*b.offset/arena,h=Math.max(1,PH*b.bytes/arena);
r.setAttribute('x',x);r.setAttribute('y',y);r.setAttribute('width',w);r.setAttribute('height',h);r.setAttribute('fill',b.output===-1?'#f0a35e':b.output===-2?'#b39ddb':'#64b5f6');r.setAttribute('stroke','#fff');r.setAttribute('class','buffer');r.dataset.id=b.node;
const t=document.createElementNS(NS,'title');t.textContent='%'+b.node+(b.output===-1?' workspace':b.output===-2?' snapshot':b.output===-3?' gathered view':' output '+b.output)+': '+b.bytes+' B at '+b.offset+', steps '+b.first+'–'+b.last;r.appendChild(t);vp.appendChild(r);}applyView();}

function applyView(){$('viewport').setAttribute('transform','translate('+view.x+','+view.y+') scale('+view.k+')');}
function fit(){const c=$('canvas').getBoundingClientRect();const w=mode==='memory'?900:(layout?layout.width:1),h=mode==='memory'?620:(layout?layout.height:1);
let k=Math.min(c.width/(w+40),c.height/(h+40));
// A tall graph (a deep network) fits its width instead, top first, and is scrolled by dragging.
if(k<0.4)k=Math.min(0.8,c.width/(w+40));view.k=Math.min(2,Math.max(0.02,k));view.x=Math.max(20,(c.width-w*view.k)/2);view.y=30;applyView();}
function centerOn(id){const it=layout&&layout.byKey['n'+id];if(!it)return;const c=$('canvas').getBoundingClientRect();view.k=Math.max(view.k,0.8);view.x=c.width/2-(it.x+W/2)*view.k;view.y=c.height/2-(it.y+H/2)*view.k;applyView();}
function select(id){selected=id;showDetails(id);draw();}

const svg=$('svg');let drag=null;
svg.addEventListener('mousedown',e=>{drag={x:e.clientX,y:e.clientY,vx:view.x,vy:view.y,moved:false};});
window.addEventListener('mousemove',e=>{if(!drag)return;const dx=e.clientX-drag.x,dy=e.clientY-drag.y;if(Math.abs(dx)+Math.abs(dy)>3)drag.moved=true;view.x=drag.vx+dx;view.y=drag.vy+dy;applyView();});
window.addEventListener('mouseup',()=>{setTimeout(()=>drag=null,0);});
svg.addEventListener('wheel',e=>{e.preventDefault();const r=svg.getBoundingClientRect(),mx=e.clientX-r.left,my=e.clientY-r.top,f=Math.exp(-e.deltaY*0.0015),k=Math.min(4,Math.max(0.02,view.k*f));
view.x=mx-(mx-view.x)*k/view.k;view.y=my-(my-view.y)*k/view.k;view.k=k;applyView();},{passive:false});
svg.addEventListener('click',e=>{if(drag&&drag.moved)return;const g=e.target.closest('[data-id],[data-group]');if(!g)return;
if(g.dataset.group!==undefined){expanded=+g.dataset.group;draw();return;}const id=+g.dataset.id;if(mode==='memory'){mode='graph';setTabs();}select(id);centerOn(id);});
document.body.addEventListener('click',e=>{const a=e.target.closest('a[data-go]');if(!a)return;const id=+a.dataset.go;if(mode!=='graph'){mode='graph';setTabs();}select(id);centerOn(id);});
$('stage').addEventListener('change',()=>{stageIndex=+$('stage').value;draw();if(selected!==null)showDetails(selected);});
$('search').addEventListener('input',()=>{draw();const q=$('search').value.trim().toLowerCase();if(!q||!layout)return;const hit=layout.items.find(it=>it.node&&((it.node.name||'').toLowerCase().includes(q)||it.node.op.toLowerCase().includes(q)));if(hit)centerOn(hit.node.id);});
$('collapse').addEventListener('change',()=>{expanded=null;draw();fit();});
$('fit').addEventListener('click',fit);
function setTabs(){$('tab-graph').className=mode==='graph'?'on':'';$('tab-memory').className=mode==='memory'?'on':'';}
$('tab-graph').addEventListener('click',()=>{mode='graph';setTabs();draw();fit();});
$('tab-memory').addEventListener('click',()=>{mode='memory';setTabs();draw();fit();});
// #stage=N opens a stage, #select=ID a node's details (links, tests).
const wantedStage=location.hash.match(/stage=(\d+)/);if(wantedStage&&+wantedStage[1]<data.stages.length){stageIndex=+wantedStage[1];$('stage').value=stageIndex;}
if(data.stages[stageIndex].graph.nodes.length>300)$('collapse').checked=true;
draw();fit();showProfile();
const wanted=location.hash.match(/select=(\d+)/);if(wanted){select(+wanted[1]);centerOn(+wanted[1]);}
</script></body></html>
)LOOMPAGE";

}  // namespace loom::view
