"""The report's stylesheet: one column that fits 1280 px without scrolling sideways, and a print layout.

Screen: a 1100 px column; tables never wider than it (headers and text cells wrap, numbers do not);
figures scale down to it. Print (and ``cartrisk report --pdf``): A4, each section from a new page, the
folded material left out (a line says it is in the HTML report), figures never split across pages.
"""

from __future__ import annotations

__all__ = ["CSS"]

CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9;
line-height:1.45}
header{background:#1f3a5f;color:#fff;padding:24px 40px}header h1{margin:0 0 6px;font-size:26px}
header p{margin:0;opacity:.85;overflow-wrap:break-word}
main{max-width:1180px;margin:0 auto;padding:20px 40px 60px}
section,.abstract{background:#fff;border-radius:10px;box-shadow:0 1px 3px rgba(0,0,0,.08);padding:22px 28px;
margin:22px 0}
h2{margin:0 0 10px;color:#1f3a5f}h3{color:#34495e;font-size:15px;margin:20px 0 6px}
p.answer{font-size:18px;margin:0 0 14px;color:#1d2330;max-width:62em}
p.method{color:#56606e;font-size:13px;margin:10px 0}
.note{color:#56606e;font-size:12px}
ol.results{margin:0 0 16px;padding-left:22px}ol.results li{margin:4px 0}ol.results a{color:#1f3a5f;font-weight:600}
div.table{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;font-size:13px;margin:8px 0 14px;max-width:100%}
th,td{border-bottom:1px solid #e3e6ea;padding:5px 9px;text-align:left;vertical-align:top;overflow-wrap:break-word}
th{background:#eef2f7;color:#1f3a5f;font-weight:600}
td.num,td[data-metric]{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.wide{font-size:11px;table-layout:fixed;width:100%}
table.wide th,table.wide td{padding:3px 4px;overflow-wrap:anywhere}
table.wide td.num{white-space:normal}table.wide td.num span.ci{white-space:nowrap}
tr:hover td{background:#f8fafc}
caption{text-align:left;color:#56606e;font-size:12px;padding-bottom:4px}
figure{margin:10px 0 16px}figure img{max-width:100%;height:auto;border:1px solid #e3e6ea;border-radius:6px;
display:block}
figcaption{color:#56606e;font-size:12.5px;margin-top:4px;max-width:70em}
.grid{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:16px}
.kpis{display:flex;flex-wrap:wrap;gap:12px}
.kpi{background:#eef2f7;border-radius:8px;padding:10px 16px;min-width:150px;max-width:210px}
.kpi b{display:block;font-size:22px;color:#1f3a5f}.kpi span{font-size:12px;color:#56606e}
.md{overflow-wrap:break-word}.md table{display:table}
pre,code{white-space:pre-wrap;overflow-wrap:break-word}
details{margin:8px 0 12px}details.more{border-top:1px solid #e3e6ea;padding-top:8px}
summary{cursor:pointer;color:#1f3a5f;font-size:13.5px;font-weight:600}
.print-only{display:none}
@media (max-width:900px){.grid{grid-template-columns:1fr}main{padding:12px}}
@page{size:A4;margin:14mm 12mm}
@media print{
  body{background:#fff;font-size:11pt}
  header{background:none;color:#000;padding:0 0 6mm;border-bottom:1px solid #999}header p{opacity:1;font-size:9pt}
  main{max-width:none;padding:0}
  section,.abstract{box-shadow:none;border-radius:0;padding:0;margin:0}
  section{break-before:page}
  details.more,.abstract details{display:none}
  .print-only{display:block}
  p.answer{font-size:12.5pt}
  figure{break-inside:avoid;margin:4mm 0}figure img{max-height:115mm;width:auto;max-width:100%;border:0}
  table{font-size:8.5pt;break-inside:auto}tr{break-inside:avoid}th{background:#eee}
  a{color:inherit;text-decoration:none}
}
"""
