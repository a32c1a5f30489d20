import { createContext, useContext } from 'react';
import type { WhoAmI } from './lib/types';

export interface Session {
  who?: WhoAmI;
  // Moves to another tab (e.g. "consumer/loader"), with optional form presets.
  go: (route: string) => void;
}

export const SessionContext = createContext<Session>({ go: () => {} });
export const useSession = () => useContext(SessionContext);
