// node-postgres against tdw serve: $1 parameters (a date-looking string stays a string), a
// prepared (named) query run twice, the SQLSTATE of a refused write. Prints JSON.
const { Client } = require("pg");
(async () => {
  const c = new Client({ host: "127.0.0.1", port: Number(process.argv[2]), user: "analyst", database: "tdw" });
  await c.connect();
  const out = {};
  out.bound = (await c.query("select k from marts.keyed where v = $1", ["2026-12-05"])).rows;
  out.echo = (await c.query("select $1::varchar as a, $2::int + 1 as b", ["5", 41])).rows;
  const q = { name: "by_v", text: "select k from marts.keyed where v = $1" };
  out.prepared = [(await c.query({ ...q, values: ["5"] })).rows, (await c.query({ ...q, values: ["x"] })).rows];
  try { await c.query("insert into marts.keyed values (9, 'x')"); } catch (e) { out.write = e.code; }
  out.after = (await c.query("select count(*)::int as n from marts.keyed")).rows;
  await c.end();
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
