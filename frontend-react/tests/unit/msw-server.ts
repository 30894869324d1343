import { setupServer } from 'msw/node';
import { defaultHandlers } from './handlers';

/** One MSW server for every test file; tests swap handlers with server.use(...). */
export const server = setupServer(...defaultHandlers);
