#!/usr/bin/env node
// A prism.v1.KeyValue client on grpc-js, traced by the official OpenTelemetry
// JS SDK (NodeTracerProvider + @opentelemetry/instrumentation-grpc, spans kept
// in an InMemorySpanExporter). It is the independent peer of prism's
// interop tests: it makes the calls, then prints one JSON line with each
// call's result and the trace id / span id of the CLIENT span the
// instrumentation made for it, so a test can check that prism's SERVER span
// is that span's child.
//
// usage: node kv_client.js TARGET METHOD=JSON [METHOD=JSON...] [--metadata KEY=VALUE]...
//            [--deadline-ms N] [--proto-dir DIR]
//   TARGET   unix:///path/to.sock or HOST:PORT
//   METHOD   Get, Set, Delete, Exists, BatchGet, BatchSet, BatchDelete
//   JSON     the request, proto3 JSON field names; bytes as base64
// e.g. node kv_client.js unix:///tmp/p.sock 'Set={"namespace":"ns","key":"k","value":"aGk="}' \
//        'Get={"namespace":"ns","key":"k"}'
// Output: {"calls":[{"method","code","details","response","trace_id","span_id","span_name",
//          "parent_span_id"}...], "spans":[every finished span]}
// Exit code: 0 when the calls were made (whatever their status), 2 on bad usage.
'use strict';

const path = require('path');

// The SDK and the instrumentation first: @grpc/grpc-js must be patched
// before it is loaded.
const { NodeTracerProvider } = require('@opentelemetry/sdk-trace-node');
const { InMemorySpanExporter, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { registerInstrumentations } = require('@opentelemetry/instrumentation');
const { GrpcInstrumentation } = require('@opentelemetry/instrumentation-grpc');

const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
provider.register(); // AsyncLocalStorage context manager + W3C tracecontext/baggage propagator
registerInstrumentations({ instrumentations: [new GrpcInstrumentation()] });

const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const METHODS = ['Get', 'Set', 'Delete', 'Exists', 'BatchGet', 'BatchSet', 'BatchDelete'];

function usage(msg) {
  process.stderr.write(`kv_client.js: ${msg}\n` +
    'usage: node kv_client.js TARGET METHOD=JSON [METHOD=JSON...] [--metadata KEY=VALUE]... ' +
    '[--deadline-ms N] [--proto-dir DIR]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = {
    target: '', calls: [], metadata: [], deadlineMs: 10000,
    protoDir: process.env.PRISM_PROTO_DIR || path.join(__dirname, '..', '..', 'proto'),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--metadata' || a === '--deadline-ms' || a === '--proto-dir') {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      const v = argv[++i];
      if (a === '--metadata') {
        const eq = v.indexOf('=');
        if (eq <= 0) usage(`--metadata '${v}': expected KEY=VALUE`);
        opts.metadata.push([v.slice(0, eq).toLowerCase(), v.slice(eq + 1)]);
      } else if (a === '--deadline-ms') {
        opts.deadlineMs = Number(v);
        if (!Number.isFinite(opts.deadlineMs) || opts.deadlineMs <= 0) usage(`bad --deadline-ms '${v}'`);
      } else {
        opts.protoDir = v;
      }
    } else if (!opts.target) {
      opts.target = a;
    } else {
      const eq = a.indexOf('=');
      const method = eq < 0 ? a : a.slice(0, eq);
      if (!METHODS.includes(method)) usage(`unknown method '${method}' (one of ${METHODS.join(', ')})`);
      let request = {};
      if (eq >= 0) {
        try { request = JSON.parse(a.slice(eq + 1)); } catch (e) { usage(`bad JSON for ${method}: ${e.message}`); }
      }
      opts.calls.push({ method, request });
    }
  }
  if (!opts.target) usage('TARGET is required');
  if (opts.calls.length === 0) usage('at least one METHOD=JSON is required');
  return opts;
}

function hexOrEmpty(s) { return s || ''; }

function spanJson(s) {
  const parent = s.parentSpanContext || undefined;
  return {
    name: s.name,
    kind: s.kind,
    trace_id: s.spanContext().traceId,
    span_id: s.spanContext().spanId,
    parent_span_id: hexOrEmpty(parent && parent.spanId),
    status: s.status,
    attributes: s.attributes,
  };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const def = protoLoader.loadSync('prism/v1/kv.proto', {
    includeDirs: [opts.protoDir], keepCase: false, longs: String, enums: String,
    defaults: true, bytes: String,
  });
  const pkg = grpc.loadPackageDefinition(def);
  const client = new pkg.prism.v1.KeyValue(opts.target, grpc.credentials.createInsecure());

  const results = [];
  for (const call of opts.calls) {
    const before = new Set(exporter.getFinishedSpans().map((s) => s.spanContext().spanId));
    const md = new grpc.Metadata();
    for (const [k, v] of opts.metadata) md.add(k, v);
    const deadline = new Date(Date.now() + opts.deadlineMs);
    const outcome = await new Promise((resolve) => {
      client[call.method](call.request, md, { deadline }, (err, response) => {
        if (err) resolve({ code: err.code, details: err.details || err.message, response: null });
        else resolve({ code: 0, details: '', response });
      });
    });
    // The CLIENT span the instrumentation made for this call.
    const span = exporter.getFinishedSpans()
      .filter((s) => !before.has(s.spanContext().spanId))
      .find((s) => s.kind === 2 /* SpanKind.CLIENT */);
    results.push({
      method: call.method,
      ...outcome,
      trace_id: span ? span.spanContext().traceId : '',
      span_id: span ? span.spanContext().spanId : '',
      span_name: span ? span.name : '',
      parent_span_id: span ? hexOrEmpty(span.parentSpanContext && span.parentSpanContext.spanId) : '',
    });
  }
  client.close();
  await provider.forceFlush();
  process.stdout.write(JSON.stringify({
    calls: results, spans: exporter.getFinishedSpans().map(spanJson),
  }) + '\n');
  await provider.shutdown();
}

main().catch((e) => {
  process.stderr.write(`kv_client.js: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
