// A dedicated module Worker importing the package (import maps do not reach into workers, so
// the path is relative).
import VERTC, * as named from './node_modules/rtm-sdk/index.js';
import { paramsFrom, probe } from './probe.js';

const report = (k, v) => postMessage([k, v]);
report('inWorker', typeof WorkerGlobalScope !== 'undefined' && self instanceof WorkerGlobalScope);
probe(VERTC, named, paramsFrom(location.search), report).catch((e) =>
  report('error', `${e && e.name}: ${e && e.message} (${e && e.code})`),
);
