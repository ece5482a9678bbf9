/** The ways a simulated A1111 call ends other than with a 200. */

/** An HTTP answer other than 200, raised from inside the engine. */
export class HttpFailure extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {
    super(`HTTP ${status}`);
  }
}

/** A1111's exception body (`api_middleware.handle_exception`). */
export function a1111Error(status: number, error: string, detail: string, errors = ''): HttpFailure {
  return new HttpFailure(status, { error, detail, body: '', errors });
}

/** Raised inside a generation when the simulated process dies; the server drops every connection. */
export class SimulatedCrash extends Error {}
