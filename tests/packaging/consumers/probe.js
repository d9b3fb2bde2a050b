// Exercises rtm-sdk the way an app does and reports what it saw through `report(key, value)`.
// The same file runs in every consumer (Vite build, Vite dev server, plain module page, Worker);
// the node test reads the reports and asserts on them.
//
// `params` (from the page's query string): `server` (rtm server URL), `appId`, and, for the
// real-server part, `token` and `user`. The node test sends the OpenAPI SendUnicast pushes
// once `loggedIn` is reported.
export async function probe(VERTC, named, params, report) {
  const { events, ErrorCode, ConnectionState } = VERTC;
  report('version', VERTC.getSdkVersion());
  report('defaultKeys', Object.keys(VERTC).sort());
  report(
    'namedMatchDefault',
    Object.keys(VERTC).filter((k) => named[k] !== VERTC[k]),
  );
  report('enums', {
    eventsPlain: Object.getPrototypeOf(events) === Object.prototype,
    eventsCount: Object.keys(events).length,
    eventNames: Object.keys(events),
    errorCodes: Object.keys(ErrorCode),
    frozen: [events, ErrorCode, ConnectionState, VERTC].every(Object.isFrozen),
    eventsValueIsKey: Object.entries(events).every(([k, v]) => k === v),
    onRoomMessageReceived: events.onRoomMessageReceived,
    errorCodePlain: Object.getPrototypeOf(ErrorCode) === Object.prototype,
    errorCodeCount: Object.keys(ErrorCode).length,
    INVALID_PARAMS: ErrorCode.INVALID_PARAMS,
    connectionStatePlain: Object.getPrototypeOf(ConnectionState) === Object.prototype,
    connectionState: { ...ConnectionState },
  });

  const engine = VERTC.createEngine(params.appId, { serverUrl: params.server });
  report(
    'engineMethods',
    [...new Set(Object.getOwnPropertyNames(Object.getPrototypeOf(engine)))]
      .filter((k) => k !== 'constructor' && typeof engine[k] === 'function')
      .sort(),
  );
  try {
    await engine.login(null, 'not a valid user id!');
    report('badLogin', 'resolved');
  } catch (e) {
    report('badLogin', { isError: e instanceof Error, name: e.name, code: e.code, message: e.message });
  }

  if (params.token) {
    const states = [];
    engine.on(events.onConnectionStateChanged, (e) => states.push(e.state));
    const text = new Promise((resolve) =>
      engine.once(events.onUserMessageReceivedOutsideRoom, (e) => resolve({ userId: e.userId, message: e.message })),
    );
    const binary = new Promise((resolve) =>
      engine.once(events.onUserBinaryMessageReceivedOutsideRoom, (e) =>
        resolve({
          userId: e.userId,
          isArrayBuffer: e.message instanceof ArrayBuffer,
          bytes: Array.from(new Uint8Array(e.message)),
        }),
      ),
    );
    await engine.login(params.token, params.user);
    report('loggedIn', true);
    report('text', await text);
    report('binary', await binary);
    await engine.logout();
    report('states', states);
  }
  VERTC.destroyEngine(engine);
  report('done', true);
}

/** The probe's parameters from a query string. */
export function paramsFrom(search) {
  return Object.fromEntries(new URLSearchParams(search));
}

/** Runs the probe in a page: reports land in `window.__rtm`. */
export function runInPage(VERTC, named) {
  const out = (globalThis.__rtm = {});
  const report = (k, v) => {
    out[k] = v;
  };
  probe(VERTC, named, paramsFrom(location.search), report).catch((e) =>
    report('error', `${e && e.name}: ${e && e.message} (${e && e.code})`),
  );
}
