// The product API client: bearer token, JSON, errors that say what to do.
import type { ApiErrorBody } from './types';

const TOKEN_KEY = 'modelseal.token';

export function loadToken(): string {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? localStorage.getItem(TOKEN_KEY) ?? '';
  } catch {
    return '';
  }
}

export function saveToken(token: string, remember: boolean): void {
  clearToken();
  (remember ? localStorage : sessionStorage).setItem(TOKEN_KEY, token);
}

export function clearToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(TOKEN_KEY);
}

let currentToken = '';
export function setApiToken(token: string): void {
  currentToken = token;
}
export function authHeaders(token = currentToken): Record<string, string> {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

export class ApiError extends Error {
  readonly status: number;
  readonly body: ApiErrorBody;
  constructor(status: number, body: ApiErrorBody) {
    super(body.message);
    this.status = status;
    this.body = body;
  }
  get hint(): string {
    return hintFor(this.status, this.body);
  }
}

// What the person should do about an error, in one sentence.
export function hintFor(status: number, e: Partial<ApiErrorBody>): string {
  const reason = e.reason ?? '';
  if (status === 0) return 'The server did not answer: check that `modelseal up` is running and reload.';
  if (status === 401) return 'Your token is not valid (it may have been rotated): choose "Change token" and paste a current one (`modelseal token show`).';
  if (status === 403 && e.module === 'server') return 'Use a token of the role this needs: `modelseal token show` lists them.';
  if (e.step === 'key-release' || reason.includes('AccessDenied') || e.policy) {
    return 'The key policy refused this machine: in Model owner → Seal model weights, pin the PCRs this machine has (or load on a machine that matches).';
  }
  if (reason === 'not-configured') return 'Start the server with a store and key service configured (`modelseal up` does this).';
  if (reason === 'not-implemented') return 'This server build does not offer that operation.';
  if (reason === 'not-gguf') return 'Pick a .gguf file: only GGUF models can be sealed.';
  if (reason === 'sha384-mismatch' || (e.message ?? '').includes('SHA-384')) {
    return 'The model is not the one you expected: check the SHA-384 the owner gave you, or clear "Expected SHA-384".';
  }
  if (status === 404) return 'It no longer exists: refresh the list.';
  if (status === 409) return 'It already exists or is busy: refresh, or choose "Replace" to publish over it.';
  if (status === 400) return 'Correct the highlighted input and try again.';
  if (status === 422) return 'An integrity check failed: the data is not what was sealed. Publish it again.';
  if (status === 503) return 'A service the server needs is down: see Environment → System.';
  return 'See the server log for details, then try again.';
}

async function parseError(res: Response): Promise<ApiError> {
  let body: ApiErrorBody = { code: 'http', module: 'server', reason: `http-${res.status}`, message: res.statusText || `HTTP ${res.status}` };
  try {
    const j = await res.json();
    if (j && typeof j === 'object' && j.error) {
      body = typeof j.error === 'string' ? { ...body, message: j.error } : { ...body, ...j.error };
    }
  } catch {
    /* not JSON */
  }
  return new ApiError(res.status, body);
}

export async function api<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path.startsWith('/') ? path : `/ms/v1/${path}`, {
      method,
      headers: { ...authHeaders(), ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new ApiError(0, { code: 'unavailable', module: 'browser', reason: 'network', message: `could not reach the server (${(e as Error).message})` });
  }
  if (!res.ok) throw await parseError(res);
  return (await res.json()) as T;
}

export const get = <T>(path: string, signal?: AbortSignal) => api<T>('GET', path, undefined, signal);
export const post = <T>(path: string, body: unknown = {}) => api<T>('POST', path, body);

// Uploads a file as the raw request body, reporting progress (fetch cannot).
export function upload<T>(path: string, file: Blob, onProgress: (done: number, total: number) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path);
    for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.total || file.size);
    xhr.onerror = () => reject(new ApiError(0, { code: 'unavailable', module: 'browser', reason: 'network', message: 'the upload was interrupted' }));
    xhr.onload = () => {
      let j: any = null;
      try {
        j = JSON.parse(xhr.responseText);
      } catch {
        /* not JSON */
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(j as T);
      else reject(new ApiError(xhr.status, j?.error ?? { code: 'http', module: 'server', reason: `http-${xhr.status}`, message: xhr.statusText }));
    };
    xhr.send(file);
  });
}

export function errorOf(e: unknown): { message: string; hint: string; body?: ApiErrorBody } {
  if (e instanceof ApiError) return { message: `${e.body.module ? e.body.module + ': ' : ''}${e.body.message}`, hint: e.hint, body: e.body };
  return { message: String((e as Error)?.message ?? e), hint: 'Reload the page and try again.' };
}
