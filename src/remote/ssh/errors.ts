/**
 * Every error the ssh transport raises, classified in one place: which failures are retryable
 * (the network, a dropped connection) and which are not (a refused key, a changed host key, a
 * closed transport, permission denied), with messages that never carry key material.
 */
import { ConnectionLostError, TransportError } from '../../errors.js';
import type { PinResult } from './hostKeys.js';

/** SFTP status codes (draft-ietf-secsh-filexfer-02). */
export const SFTP_NO_SUCH_FILE = 2;
export const SFTP_PERMISSION_DENIED = 3;

/** What ssh2 says when a call is made on a connection that has gone (or we said it had). */
const LOST_MESSAGE = /No response from server|Not connected|was lost/;

/** Whether an error from ssh2 means the connection under it is gone. */
export function isLostMessage(err: unknown): boolean {
  return LOST_MESSAGE.test(err instanceof Error ? err.message : '');
}

/** First line, at most 200 chars, with anything that looks like key material dropped. */
export function oneLine(msg: string): string {
  const line = msg.trim().split('\n')[0] ?? '';
  if (/PRIVATE KEY|BEGIN OPENSSH|-----BEGIN/.test(line)) return '[details withheld]';
  return line.slice(0, 200);
}

/** A call on a transport that `close()` ended (`was`: it ended while the call was in flight). */
export function closedError(label: string, was = false): TransportError {
  return new TransportError(`ssh transport to ${label} ${was ? 'was closed' : 'is closed'}`, {
    retryable: false,
  });
}

/** The connection dropped (retryable: a later call reconnects). */
export function lostError(label: string, during?: string): ConnectionLostError {
  return new ConnectionLostError(`ssh connection to ${label} was lost${during ? ` ${during}` : ''}`);
}

/** ssh2 threw synchronously for an unparsable private key; its message is not passed on. */
export function badSettingsError(label: string): TransportError {
  return new TransportError(`cannot connect to ${label}: the private key or ssh settings are invalid`, {
    retryable: false,
  });
}

/** A failed connection attempt: the host key check first, then ssh2's `level`. */
export function connectError(
  err: Error & { level?: string; code?: string },
  pin: PinResult | Error | undefined,
  label: string,
  pinId: string,
): TransportError {
  if (pin === 'mismatch') {
    return new TransportError(`host key for ${pinId} changed`, { retryable: false });
  }
  if (pin instanceof Error) {
    return new TransportError(`cannot check the host key for ${pinId}: ${oneLine(pin.message)}`, {
      retryable: false,
    });
  }
  switch (err.level) {
    case 'client-authentication':
      return new TransportError(`ssh authentication failed for ${label}`, { retryable: false });
    case 'client-timeout':
      return new ConnectionLostError(`ssh connection to ${label} timed out during the handshake`);
    case 'client-socket':
    case 'client-dns':
      return new ConnectionLostError(`cannot reach ${label}: ${err.code ?? oneLine(err.message)}`);
    default:
      return new ConnectionLostError(`ssh connection to ${label} failed: ${oneLine(err.message)}`);
  }
}

/** An exec channel that could not be opened on a live connection. */
export function channelError(label: string, err: unknown): TransportError {
  return new TransportError(`cannot open an ssh channel on ${label}: ${oneLine((err as Error).message)}`);
}

/** A failed SFTP operation: permission denied is not retried, anything else is. */
export function sftpError(op: string, path: string, err: unknown, label: string): TransportError {
  const code = (err as { code?: unknown }).code;
  const what =
    code === SFTP_NO_SUCH_FILE
      ? 'ENOENT'
      : code === SFTP_PERMISSION_DENIED
        ? 'EACCES'
        : typeof code === 'string'
          ? code
          : oneLine(err instanceof Error ? err.message : String(err));
  return hostFileError(op, path, what, label, code !== SFTP_PERMISSION_DENIED, err);
}

/**
 * A file operation on the host that failed with `what` (an errno name, as the command agent answers,
 * or SFTP's status named alike): the same message and retry rule whichever way the file went.
 */
export function hostFileError(
  op: string,
  path: string,
  what: string,
  label: string,
  retryable = what !== 'EACCES',
  cause?: unknown,
): TransportError {
  return new TransportError(`ssh ${op} failed for ${path} on ${label}: ${what}`, {
    retryable,
    ...(cause !== undefined ? { cause } : {}),
  });
}

/** A local file that cannot be read for an upload (not retried: the file will not appear). */
export function localReadError(localPath: string, err: NodeJS.ErrnoException): TransportError {
  return new TransportError(`ssh put failed: cannot read ${localPath}: ${err.code}`, {
    retryable: false,
    cause: err,
  });
}
