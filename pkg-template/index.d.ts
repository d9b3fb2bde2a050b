// Types of rtm-sdk: the messaging API of VERTC (@volcengine/rtc).

/** Event names; each value equals its key. */
export declare const events: {
  readonly onUserMessageReceived: 'onUserMessageReceived';
  readonly onUserBinaryMessageReceived: 'onUserBinaryMessageReceived';
  readonly onRoomMessageReceived: 'onRoomMessageReceived';
  readonly onRoomBinaryMessageReceived: 'onRoomBinaryMessageReceived';
  readonly onUserMessageReceivedOutsideRoom: 'onUserMessageReceivedOutsideRoom';
  readonly onUserBinaryMessageReceivedOutsideRoom: 'onUserBinaryMessageReceivedOutsideRoom';
  readonly onConnectionStateChanged: 'onConnectionStateChanged';
  readonly onError: 'onError';
  readonly onLoginResult: 'onLoginResult';
  readonly onServerParamsSetResult: 'onServerParamsSetResult';
  readonly onServerMessageSendResult: 'onServerMessageSendResult';
  readonly onUserJoined: 'onUserJoined';
  readonly onUserLeave: 'onUserLeave';
  readonly onTokenWillExpire: 'onTokenWillExpire';
  readonly onUserMessageSendResult: 'onUserMessageSendResult';
  readonly onRoomMessageSendResult: 'onRoomMessageSendResult';
  readonly onUserMessageSendResultOutsideRoom: 'onUserMessageSendResultOutsideRoom';
};
export type EventName = (typeof events)[keyof typeof events];

/** Error codes carried by `SDKError.code` and `onError`; each value equals its key. */
export type ErrorCodeName =
  | 'USER_MESSAGE_TIMEOUT' | 'USER_MESSAGE_BROKEN' | 'USER_MESSAGE_NO_RECEIVER'
  | 'USER_MESSAGE_EXCEED_QPS' | 'USER_MESSAGE_SEND_TO_SERVER_ERROR'
  | 'USER_MESSAGE_SERVER_RESPONSE_ERROR' | 'USER_MESSAGE_NOT_JOIN' | 'USER_MESSAGE_NOT_LOGIN'
  | 'USER_MESSAGE_SERVER_PARAMS_NOTSET' | 'USER_MESSAGE_UNKNOWN' | 'INVALID_PARAMS'
  | 'INVALID_TOKEN' | 'TOKEN_EXPIRED' | 'ALREADY_LOGIN' | 'LOGIN_FAILED' | 'REPEAT_JOIN'
  | 'JOIN_ROOM_FAILED' | 'DUPLICATE_LOGIN' | 'RTM_DUPLICATE_LOGIN' | 'NOT_LOGIN'
  | 'CALLBACK_URL_NOT_ALLOWED' | 'PROTOCOL_ERROR' | 'SERVER_SHUTDOWN' | 'INVALID_APP_ID'
  | 'KICKED_OUT' | 'RECOVERY_FAILED' | 'NOT_CONNECTED_YET' | 'TIME_OUT' | 'UNEXPECTED_ERROR'
  | 'SEND_QUEUE_FULL' | 'RTM_TOKEN_ERROR' | 'RECONNECT_FAILED' | 'ROOM_DISMISS';
export declare const ErrorCode: { readonly [K in ErrorCodeName]: K };

/** Connection states (`onConnectionStateChanged`). */
export declare const ConnectionState: {
  readonly CONNECTION_START: 0;
  readonly CONNECTION_STATE_DISCONNECTED: 1;
  readonly CONNECTION_STATE_CONNECTING: 2;
  readonly CONNECTION_STATE_CONNECTED: 3;
  readonly CONNECTION_STATE_RECONNECTING: 4;
  readonly CONNECTION_STATE_RECONNECTED: 5;
  /** Disconnected for more than 10 s; retries go on. */
  readonly CONNECTION_STATE_LOST: 6;
};
export type ConnectionStateValue = (typeof ConnectionState)[keyof typeof ConnectionState];

/** Why a user left a room (`onUserLeave`). */
export declare const UserOfflineReason: {
  readonly QUIT: 0;
  readonly DROPPED: 1;
  readonly SWITCH_TO_INVISIBLE: 2;
  readonly KICKED_BY_ADMIN: 3;
};
export type UserOfflineReasonValue = (typeof UserOfflineReason)[keyof typeof UserOfflineReason];

/** `getPeerOnlineStatus` results. */
export type PeerOnlineStatusValue = 0 | 1 | 2;

/** Rejections and throws: a real `Error` with a stable `code`. */
export interface SDKError extends Error {
  name: 'SDKError';
  code: ErrorCodeName;
}

export interface EngineConfig {
  /** The rtm server's base URL (`https://…` or `wss://…`); the page's origin when absent. */
  serverUrl?: string;
  /**
   * At most this many messages wait while the connection is re-established (default 100);
   * more reject with `SEND_QUEUE_FULL`.
   */
  maxQueuedMessages?: number;
  /** A message that waited this long for the connection rejects with `USER_MESSAGE_TIMEOUT` (default 30,000). */
  maxQueuedAgeMs?: number;
  /** A connection from which nothing arrived this long is considered dead (default 25,000). */
  heartbeatTimeoutMs?: number;
}

export interface UserInfo {
  userId: string;
  /** At most 200 bytes. */
  extraInfo?: string;
}

export interface TextMessageEvent {
  /** The sender: a user id, or the OpenAPI `From`. */
  userId: string;
  message: string;
}
export interface BinaryMessageEvent {
  /** The sender: a user id, or the OpenAPI `From`. */
  userId: string;
  message: ArrayBuffer;
}
export interface ServerMessageResult {
  /** The engine's message id (one counter per engine). */
  msgId: number;
  /** The business server's response body. */
  response: string;
}
export interface ServerMessageSendResultEvent {
  msgid: number;
  /** 0 on success, else the wire send-result code (17, 18, 106, ...). */
  error: number;
  /** The business server's response body. */
  message: string;
}

/** Payloads of every event, by name. */
export interface EngineEventMap {
  onUserMessageReceived: (e: TextMessageEvent) => void;
  onUserBinaryMessageReceived: (e: BinaryMessageEvent) => void;
  onRoomMessageReceived: (e: TextMessageEvent) => void;
  onRoomBinaryMessageReceived: (e: BinaryMessageEvent) => void;
  onUserMessageReceivedOutsideRoom: (e: TextMessageEvent) => void;
  onUserBinaryMessageReceivedOutsideRoom: (e: BinaryMessageEvent) => void;
  onConnectionStateChanged: (e: { state: ConnectionStateValue }) => void;
  onError: (e: { errorCode: ErrorCodeName }) => void;
  onLoginResult: (e: { userId: string; errorCode: number; elapsed: number }) => void;
  /** No argument on success; the failure's code otherwise. */
  onServerParamsSetResult: (error?: number) => void;
  onServerMessageSendResult: (e: ServerMessageSendResultEvent) => void;
  onUserJoined: (e: { userInfo: UserInfo }) => void;
  onUserLeave: (e: { userInfo: UserInfo; reason: UserOfflineReasonValue }) => void;
  /** 30 s before the room token expires: call `updateToken`. */
  onTokenWillExpire: (e: { roomId: string }) => void;
  onUserMessageSendResult: (e: { msgid: number; error: number }) => void;
  onRoomMessageSendResult: (e: { msgid: number; error: number }) => void;
  onUserMessageSendResultOutsideRoom: (e: { msgid: number; error: number }) => void;
}

/** One messaging engine: one connection, one user, at most one room. */
export interface IRTCEngine {
  on<K extends EventName>(event: K, listener: EngineEventMap[K]): void;
  addListener<K extends EventName>(event: K, listener: EngineEventMap[K]): void;
  once<K extends EventName>(event: K, listener: EngineEventMap[K]): void;
  off<K extends EventName>(event: K, listener?: EngineEventMap[K]): void;
  removeListener<K extends EventName>(event: K, listener?: EngineEventMap[K]): void;
  removeAllListeners(event?: EventName): void;
  listenerCount(event: EventName): number;
  listeners<K extends EventName>(event: K): Array<EngineEventMap[K]>;
  eventNames(): EventName[];
  emit<K extends EventName>(event: K, ...args: Parameters<EngineEventMap[K]>): boolean;

  /**
   * Logs in as `userId` (`^[a-zA-Z0-9@._-]{1,128}$`) with a login token; `null` for a server
   * that does not check tokens. Rejects with `INVALID_PARAMS`, `ALREADY_LOGIN`, `LOGIN_FAILED`,
   * `INVALID_TOKEN`, `TOKEN_EXPIRED`.
   */
  login(token: string | null, userId: string): Promise<void>;
  /** Logs out; rejects with `NOT_LOGIN` when not logged in. */
  logout(): Promise<void>;
  /** Replaces the login token (re-logs in if the last login failed on its token). */
  updateLoginToken(token: string): Promise<void>;
  /** 0 = offline, 1 = online, 2 = unreachable. */
  getPeerOnlineStatus(userId: string): Promise<PeerOnlineStatusValue>;

  /** Sets where `sendServerMessage` goes; also reported by `onServerParamsSetResult`. */
  setServerParams(signature: string, url: string): Promise<void>;
  /** Sends text to the business server; resolves to the message id and its response body. */
  sendServerMessage(message: string): Promise<ServerMessageResult>;
  /** Sends bytes to the business server; resolves to the message id and its response body. */
  sendServerBinaryMessage(message: ArrayBuffer | Uint8Array): Promise<ServerMessageResult>;

  /** Sends text to a logged-in user outside rooms; resolves to the message id. */
  sendUserMessageOutsideRoom(userId: string, message: string): Promise<number>;
  /** Sends bytes to a logged-in user outside rooms; resolves to the message id. */
  sendUserBinaryMessageOutsideRoom(userId: string, message: ArrayBuffer | Uint8Array): Promise<number>;

  /**
   * Joins `roomId` as `userInfo.userId`. `roomConfig` is accepted for compatibility and
   * ignored. Rejects with `INVALID_TOKEN`, `JOIN_ROOM_FAILED`, `REPEAT_JOIN`, `NOT_LOGIN`, ...
   */
  joinRoom(token: string | null, roomId: string, userInfo: UserInfo, roomConfig?: object): Promise<void>;
  /** Leaves the room; resolves at once when not in one. */
  leaveRoom(): Promise<void>;
  /**
   * Visible (the default) or invisible to the other members: they are told about a change
   * (`onUserJoined`, or `onUserLeave` with `SWITCH_TO_INVISIBLE`) and nothing about an
   * invisible user's joins and leaves. Kept for later joins; call it before `joinRoom` to
   * join as an invisible audience member.
   */
  setUserVisibility(enable: boolean): Promise<void>;
  /** Renews the room token (see `onTokenWillExpire`). */
  updateToken(token: string): Promise<void>;
  /** Sends text to one user in the room; resolves to the message id. */
  sendUserMessage(userId: string, message: string): Promise<number>;
  /** Sends bytes to one user in the room; resolves to the message id. */
  sendUserBinaryMessage(userId: string, message: ArrayBuffer | Uint8Array): Promise<number>;
  /** Sends text to everyone else in the room; resolves to the message id. */
  sendRoomMessage(message: string): Promise<number>;
  /** Sends bytes to everyone else in the room; resolves to the message id. */
  sendRoomBinaryMessage(message: ArrayBuffer | Uint8Array): Promise<number>;
}

export declare function createEngine(appId: string, config?: EngineConfig): IRTCEngine;
export declare function destroyEngine(engine: IRTCEngine): void;
export declare function getSdkVersion(): string;

declare const VERTC: {
  createEngine: typeof createEngine;
  destroyEngine: typeof destroyEngine;
  getSdkVersion: typeof getSdkVersion;
  events: typeof events;
  ErrorCode: typeof ErrorCode;
  ConnectionState: typeof ConnectionState;
  UserOfflineReason: typeof UserOfflineReason;
};
export default VERTC;
