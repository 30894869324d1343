export { addHistory, type HistoryRecord } from './api/history-store';
export { HistoryList } from './components/history-list';
